# runIvis() and calculateIvis(): ivis on SingleCellExperiment objects.

# A SingleCellExperiment of 90 simulated cells of three types (each with its own marker
# genes) and 60 genes, with counts, logcounts, a PCA and the cell types in colData.
simulated_sce <- function(n_cells = 90, seed = 1) {
  skip_if_not_installed("SingleCellExperiment")
  set.seed(seed)
  types <- c("T", "B", "Monocyte")
  cell_type <- factor(rep(types, length.out = n_cells), levels = types)
  means <- matrix(2, nrow = 60, ncol = 3)
  for (i in 1:3) means[(i - 1) * 10 + 1:10, i] <- 20
  counts <- matrix(stats::rpois(60 * n_cells, means[, as.integer(cell_type)]), nrow = 60,
                   dimnames = list(sprintf("gene%02d", 1:60), sprintf("cell%03d", seq_len(n_cells))))
  logcounts <- log1p(counts)
  pca <- stats::prcomp(t(logcounts), rank. = 10)$x
  SingleCellExperiment::SingleCellExperiment(
    assays = list(counts = counts, logcounts = logcounts),
    colData = data.frame(cell_type = cell_type, row.names = colnames(counts)),
    reducedDims = list(PCA = pca)
  )
}

FAST <- list(k = 8, batch_size = 45, epochs = 2, n_trees = 10, verbose = 0, random_state = 7)
run_fast <- function(x, ...) do.call(ivis::runIvis, c(list(x), utils::modifyList(FAST, list(...))))
ivis_fast <- function(...) do.call(ivis::ivis, utils::modifyList(FAST, list(...)))

test_that("runIvis() stores the ivis embedding of the most variable logcounts as \"IVIS\"", {
  skip_if_no_ivis()
  sce <- simulated_sce()
  out <- run_fast(sce, ntop = 25)
  expect_identical(SingleCellExperiment::reducedDimNames(out), c("PCA", "IVIS"))
  embedding <- SingleCellExperiment::reducedDim(out, "IVIS")
  expect_identical(dimnames(embedding), list(colnames(sce), c("IVIS1", "IVIS2")))
  # the 25 genes of highest variance, one row per cell: the same values as ivis()
  logcounts <- SummarizedExperiment::assay(sce, "logcounts")
  top <- order(apply(logcounts, 1, stats::var), decreasing = TRUE)[1:25]
  expect_equal(embedding, ivis_fast()$fit_transform(t(logcounts[top, ])), ignore_attr = TRUE)
  expect_setequal(attr(embedding, "ivis_input")$subset_row, rownames(sce)[top])
  expect_s3_class(attr(embedding, "model"), "ivis_model")
  # calculateIvis() returns the same matrix; exprs_values is the former name of assay.type
  expect_equal(ivis::calculateIvis(sce, ntop = 25, k = 8, batch_size = 45, epochs = 2,
                                   n_trees = 10, verbose = 0, random_state = 7),
               embedding, ignore_attr = TRUE)
  counts <- run_fast(sce, exprs_values = "counts", subset_row = 1:30, name = "IVIS_counts",
                     ncomponents = 3)
  counted <- SingleCellExperiment::reducedDim(counts, "IVIS_counts")
  expect_identical(dim(counted), c(90L, 3L))
  expect_equal(counted, ivis_fast(embedding_dims = 3)$fit_transform(
    t(SummarizedExperiment::assay(sce, "counts")[1:30, ])), ignore_attr = TRUE)
})

test_that("dimred uses a reduced dimension, and calculateIvis() takes a plain matrix", {
  skip_if_no_ivis()
  sce <- simulated_sce()
  out <- run_fast(sce, dimred = "PCA", n_dimred = 5)
  pca <- SingleCellExperiment::reducedDim(sce, "PCA")
  expected <- ivis_fast()$fit_transform(pca[, 1:5])
  expect_equal(SingleCellExperiment::reducedDim(out, "IVIS"), expected, ignore_attr = TRUE)
  expect_identical(attr(SingleCellExperiment::reducedDim(out, "IVIS"), "ivis_input"),
                   list(dimred = "PCA", n_dimred = 1:5))
  # a matrix with one row per cell (transposed), as sparse Matrix or dense
  direct <- do.call(ivis::calculateIvis, c(list(pca[, 1:5], transposed = TRUE), FAST))
  expect_equal(direct, expected, ignore_attr = TRUE)
  expect_identical(rownames(direct), colnames(sce))
  skip_if_not_installed("Matrix")
  sparse <- Matrix::Matrix(SummarizedExperiment::assay(sce, "counts"), sparse = TRUE)
  genes <- do.call(ivis::calculateIvis, c(list(sparse, subset_row = paste0("gene0", 1:9)), FAST))
  expect_equal(genes, ivis_fast()$fit_transform(Matrix::t(sparse[1:9, ])), ignore_attr = TRUE)
})

test_that("labels from a colData column train a supervised, or semi-supervised, model", {
  skip_if_no_ivis()
  sce <- simulated_sce()
  out <- run_fast(sce, dimred = "PCA", labels = "cell_type")
  embedding <- SingleCellExperiment::reducedDim(out, "IVIS")
  model <- attr(embedding, "model")
  expect_identical(summary(model)$classes, levels(sce$cell_type))
  pca <- SingleCellExperiment::reducedDim(sce, "PCA")
  expect_equal(embedding, ivis_fast()$fit_transform(pca, sce$cell_type), ignore_attr = TRUE)
  predicted <- colnames(model$score_samples(pca))[max.col(model$score_samples(pca))]
  expect_gt(mean(predicted == sce$cell_type), 0.5)
  # NA marks an unlabelled cell
  partial <- sce$cell_type
  partial[seq(1, 90, by = 2)] <- NA
  sce$partial <- partial
  semi <- run_fast(sce, labels = "partial", ntop = 40)
  logcounts <- SummarizedExperiment::assay(sce, "logcounts")
  top <- order(apply(logcounts, 1, stats::var), decreasing = TRUE)[1:40]
  expect_equal(SingleCellExperiment::reducedDim(semi, "IVIS"),
               ivis_fast()$fit_transform(t(logcounts[top, ]), partial), ignore_attr = TRUE)
})

test_that("a stored embedding embeds new cells with its model and features", {
  skip_if_no_ivis()
  reference <- run_fast(simulated_sce(seed = 1), ntop = 20)
  stored <- SingleCellExperiment::reducedDim(reference, "IVIS")
  model <- attr(stored, "model")
  history <- model$loss_history()
  query <- simulated_sce(n_cells = 30, seed = 2)
  projected <- ivis::runIvis(query, model = stored)
  features <- attr(stored, "ivis_input")$subset_row
  expected <- predict(model, t(SummarizedExperiment::assay(query, "logcounts")[features, ]))
  embedding <- SingleCellExperiment::reducedDim(projected, "IVIS")
  expect_equal(embedding, expected, ignore_attr = TRUE)
  expect_identical(rownames(embedding), colnames(query))
  expect_identical(model$loss_history(), history) # not trained again
  # a model trained on a reduced dimension reads the query's one
  on_pca <- SingleCellExperiment::reducedDim(run_fast(simulated_sce(), dimred = "PCA",
                                                      n_dimred = 4), "IVIS")
  pca_query <- ivis::calculateIvis(query, model = on_pca)
  expect_equal(pca_query, predict(attr(on_pca, "model"),
                                  SingleCellExperiment::reducedDim(query, "PCA")[, 1:4]),
               ignore_attr = TRUE)
  expect_error(ivis::runIvis(query, model = stored, labels = "cell_type"),
               "`labels` cannot apply")
})

test_that("runIvis() names the problem and the fix for bad input, in R terms", {
  sce <- simulated_sce()
  expect_error(ivis::runIvis(sce, dimred = "UMAP"),
               "no reduced dimension \"UMAP\"; its reduced dimensions are: \"PCA\"", fixed = TRUE)
  expect_error(ivis::runIvis(sce, dimred = "PCA", n_dimred = 12),
               "`n_dimred` asks for column 12, but reducedDim(x, \"PCA\") has 10 columns: use n_dimred within 1:10.",
               fixed = TRUE)
  expect_error(ivis::runIvis(sce, dimred = "PCA", n_dimred = c(1, 11)), "asks for column 11")
  expect_error(ivis::runIvis(sce, labels = "celltype"),
               "labels = \"celltype\" is not a column of the cells' colData; its columns are: \"cell_type\"",
               fixed = TRUE)
  expect_error(ivis::runIvis(sce, assay.type = "normcounts"),
               "no assay \"normcounts\"; its assays are: \"counts\", \"logcounts\"", fixed = TRUE)
  expect_error(ivis::runIvis(sce, subset_row = c("gene01", "TP53")),
               "1 of the 2 features in `subset_row` is not among the rows of `x`: \"TP53\"", fixed = TRUE)
  expect_error(ivis::runIvis(sce, subset_row = 0:2), "`subset_row` asks for row 0")
  expect_error(ivis::runIvis(sce, embedding_dims = 3), "`ncomponents` instead of `embedding_dims`")
  expect_error(ivis::runIvis(matrix(1, 3, 3)), "takes a SingleCellExperiment, not a double matrix")
  expect_error(ivis::runIvis(sce, model = matrix(0, 90, 2)), "without a model")
  expect_error(ivis::calculateIvis(matrix(1, 3, 4), labels = "cell_type"),
               "`labels` has 1 value but there are 4 cells: give one label per cell")
})
