# RunIvis(): ivis on Seurat objects (SeuratObject's pbmc_small: 80 cells, 230 genes).

pbmc <- function() {
  skip_if_not_installed("SeuratObject")
  SeuratObject::pbmc_small
}

# Small, fast training settings, as RunIvis() arguments and as ivis() arguments.
FAST <- list(k = 8, batch_size = 40, epochs = 2, n_trees = 10)
run_fast <- function(object, ...) {
  args <- utils::modifyList(c(FAST, list(seed.use = 7, verbose = FALSE)), list(...))
  do.call(ivis::RunIvis, c(list(object), args))
}
ivis_fast <- function(...) {
  do.call(ivis::ivis, utils::modifyList(c(FAST, list(random_state = 7, verbose = 0)), list(...)))
}

test_that("RunIvis() stores the ivis embedding of the chosen PCA dimensions as \"ivis\"", {
  skip_if_no_ivis()
  object <- pbmc()
  out <- run_fast(object, dims = 1:10)
  expect_true("ivis" %in% SeuratObject::Reductions(out))
  reduction <- out[["ivis"]]
  expect_s4_class(reduction, "DimReduc")
  expect_identical(SeuratObject::Key(reduction), "ivis_")
  embedding <- SeuratObject::Embeddings(out, "ivis")
  expect_identical(dimnames(embedding), list(colnames(object), c("ivis_1", "ivis_2")))
  expect_null(attr(embedding, "model"))
  # the same values as ivis() and as the Python core, with the same seed and parameters
  X <- SeuratObject::Embeddings(object, "pca")[, 1:10]
  expect_equal(embedding, ivis_fast()$fit_transform(X), ignore_attr = TRUE)
  core <- ivis:::ivis_core()
  py <- core$Ivis(k = 8L, batch_size = 40L, epochs = 2L, n_trees = 10L, verbose = 0L,
                  random_state = 7L)
  expect_equal(embedding, py$fit_transform(reticulate::np_array(unname(X))), ignore_attr = TRUE)
  # the model and its input are kept; the command is logged as Seurat's own are
  misc <- methods::slot(reduction, "misc")
  expect_s3_class(misc$model, "ivis_model")
  expect_identical(misc$input, list(reduction = "pca", dims = 1:10))
  expect_identical(misc$model$get_params()$random_state, 7L)
  expect_true("RunIvis.RNA.pca" %in% names(out@commands))
  # dims = NULL uses every dimension of the reduction
  all_dims <- run_fast(object, epochs = 1)
  expect_identical(methods::slot(all_dims[["ivis"]], "misc")$input$dims, 1:19)
})

test_that("RunIvis() embeds assay features under the name and key it is given", {
  skip_if_no_ivis()
  object <- pbmc()
  # every gene: the 20 variable genes alone leave some cells all zero, hence tied neighbours
  features <- rownames(object)
  out <- run_fast(object, features = features, n.components = 3,
                  reduction.name = "ivis_genes", reduction.key = "IVISG_")
  embedding <- SeuratObject::Embeddings(out, "ivis_genes")
  expect_identical(colnames(embedding), paste0("IVISG_", 1:3))
  expect_identical(SeuratObject::Key(out[["ivis_genes"]]), "IVISG_")
  expect_false("ivis" %in% SeuratObject::Reductions(out))
  data <- SeuratObject::GetAssayData(object, slot = "data", assay = "RNA")
  X <- Matrix::t(data[features, ])
  expect_equal(embedding, ivis_fast(embedding_dims = 3)$fit_transform(X), ignore_attr = TRUE)
  expect_identical(methods::slot(out[["ivis_genes"]], "misc")$input,
                   list(features = features, assay = "RNA", slot = "data"))
})

test_that("DimPlot(reduction = \"ivis\") draws the embedding", {
  skip_if_no_ivis()
  skip_if_not_installed("Seurat")
  out <- run_fast(pbmc(), dims = 1:10)
  plot <- Seurat::DimPlot(out, reduction = "ivis")
  expect_s3_class(plot, "ggplot")
  drawn <- ggplot2::ggplot_build(plot)$data[[1L]]
  embedding <- SeuratObject::Embeddings(out, "ivis")
  expect_equal(sort(drawn$x), sort(unname(embedding[, 1])))
  expect_equal(sort(drawn$y), sort(unname(embedding[, 2])))
})

test_that("reduction.model embeds new cells with the stored model, without training", {
  skip_if_no_ivis()
  object <- pbmc()
  features <- SeuratObject::VariableFeatures(object)
  reference <- run_fast(object[, 1:60], features = features)
  query <- object[, 61:80]
  projected <- ivis::RunIvis(query, reduction.model = reference[["ivis"]])
  model <- methods::slot(reference[["ivis"]], "misc")$model
  history <- model$loss_history()
  data <- SeuratObject::GetAssayData(query, slot = "data")
  expected <- predict(model, Matrix::t(data[features, ]))
  embedding <- SeuratObject::Embeddings(projected, "ivis")
  expect_equal(embedding, expected, ignore_attr = TRUE)
  expect_identical(rownames(embedding), colnames(query))
  expect_identical(model$loss_history(), history) # not trained again
  # the same model, saved and loaded, embeds the same way
  path <- tempfile("ivis-seurat-")
  on.exit(unlink(path, recursive = TRUE), add = TRUE)
  model$save_model(path)
  loaded <- ivis::RunIvis(query, features = features, reduction.model = ivis::load_ivis(path))
  expect_equal(SeuratObject::Embeddings(loaded, "ivis"), embedding, tolerance = 1e-6)
  expect_error(ivis::RunIvis(query, reduction.model = reference[["ivis"]], epochs = 3),
               "`epochs` cannot apply")
  expect_error(ivis::RunIvis(query, reduction.model = object[["pca"]]),
               "holds no ivis model")
})

test_that("labels from a meta.data column train a supervised, or semi-supervised, model", {
  skip_if_no_ivis()
  object <- pbmc()
  out <- run_fast(object, dims = 1:10, labels = "RNA_snn_res.1")
  model <- methods::slot(out[["ivis"]], "misc")$model
  expect_identical(summary(model)$classes, levels(object$RNA_snn_res.1))
  X <- SeuratObject::Embeddings(object, "pca")[, 1:10]
  expect_equal(SeuratObject::Embeddings(out, "ivis"),
               ivis_fast()$fit_transform(X, object$RNA_snn_res.1), ignore_attr = TRUE)
  # NA marks an unlabelled cell
  partial <- object$RNA_snn_res.1
  partial[seq(1, 80, by = 2)] <- NA
  object$partial <- partial
  semi <- run_fast(object, dims = 1:10, labels = "partial")
  expect_equal(SeuratObject::Embeddings(semi, "ivis"),
               ivis_fast()$fit_transform(X, partial), ignore_attr = TRUE)
  expect_true(summary(methods::slot(semi[["ivis"]], "misc")$model)$supervised)
})

test_that("RunIvis() names the problem and the fix for bad input, in R terms", {
  object <- pbmc()
  expect_error(ivis::RunIvis(object, reduction = "umap"),
               "no reduction \"umap\"; its reductions are: \"pca\", \"tsne\"", fixed = TRUE)
  expect_error(ivis::RunIvis(object, dims = 1:25),
               paste("`dims` asks for dimension 20, 21, 22, 23, 24, 25, but the reduction",
                     "\"pca\" has 19 dimensions: use dims within 1:19."), fixed = TRUE)
  expect_error(ivis::RunIvis(object, dims = 0:3), "asks for dimension 0,")
  expect_error(ivis::RunIvis(object, dims = 1:5, labels = "celltype"),
               "labels = \"celltype\" is not a column of the cells' meta.data; its columns are: \"orig.ident\"",
               fixed = TRUE)
  expect_error(ivis::RunIvis(object, labels = c("a", "b")), "`labels` has 2 values but there are 80 cells")
  expect_error(ivis::RunIvis(object, features = c("CD3D", "NOTAGENE")),
               "1 of the 2 `features` is not in slot \"data\" of assay \"RNA\" (230 features): \"NOTAGENE\"",
               fixed = TRUE)
  expect_error(ivis::RunIvis(object, features = "CD3D", assay = "ADT"),
               "no assay \"ADT\"; its assays are: \"RNA\"", fixed = TRUE)
  expect_error(ivis::RunIvis(object, dims = 1:5, features = "CD3D"), "not both")
  expect_error(ivis::RunIvis(object, random_state = 1), "takes `seed.use` instead of `random_state`")
  expect_error(ivis::RunIvis(object, embedding_dims = 3), "`n.components` instead of `embedding_dims`")
  expect_error(ivis::RunIvis(matrix(1, 3, 3)), "takes a Seurat object, not a double matrix")
})

test_that("Seurat and SingleCellExperiment stay optional", {
  out <- run_rscript(c(
    "library(ivis)",
    "cat('loaded:', intersect(c('Seurat', 'SeuratObject', 'SingleCellExperiment'), loadedNamespaces()), '\\n')"
  ))
  expect_identical(attr(out, "status"), 0L, info = paste(out, collapse = "\n"))
  expect_true(any(trimws(out) == "loaded:"), info = paste(out, collapse = "\n"))
  expect_error(ivis:::need_package("ivisNoSuchPackage", "RunIvis", "install.packages(\"Seurat\")"),
               "RunIvis() needs the R package 'ivisNoSuchPackage', which is not installed. Install it with install.packages(\"Seurat\").",
               fixed = TRUE)
})
