#' Run ivis on a SingleCellExperiment
#'
#' `calculateIvis()` embeds cells with ivis and returns the embedding;
#' `runIvis()` stores it in a SingleCellExperiment as
#' `reducedDim(x, "IVIS")`. They follow the conventions of scater's
#' `calculateUMAP()` and `runUMAP()`: the input is the `ntop` most variable
#' features of the assay `assay.type` (`"logcounts"` by default), or the
#' features in `subset_row`, or an existing reduced dimension named by
#' `dimred` (such as `"PCA"`).
#'
#' Arguments for [ivis()] go in `...` (such as `epochs`, `k`, `random_state` or
#' `supervision_weight`); as in [ivis_embed()], `k` and `batch_size` are chosen
#' from the number of cells when not given.
#'
#' **Supervised and semi-supervised use.** `labels` names a column of
#' `colData(x)` (or gives one label per cell); training then also learns to
#' predict it. Cells whose label is `NA` are unlabelled: they shape the
#' embedding through the triplet loss only (semi-supervised training).
#'
#' **The model and new cells.** The embedding carries the trained model as the
#' attribute `"model"` (`attr(reducedDim(sce, "IVIS"), "model")`, an
#' `ivis_model`, see [ivis()]) and what it was trained on as the attribute
#' `"ivis_input"`. To embed new cells with it, without training, pass the
#' stored embedding as `model`: `runIvis(query, model = reducedDim(sce,
#' "IVIS"))`. The query is read as the model was trained (the same features by
#' name, or the same columns of a reduced dimension of the same name, which
#' must then lie in the same space as the reference's). Subsetting the
#' reference's cells drops these attributes; and the Python part of a model
#' does not survive `saveRDS()`: save it with `model$save_model(path)`, load it
#' with [load_ivis()] and pass the loaded model as `model`.
#'
#' @param x A SingleCellExperiment or SummarizedExperiment (`runIvis()`: a
#'   SingleCellExperiment); for `calculateIvis()` also a numeric matrix or
#'   sparse `Matrix` with one row per feature and one column per cell (one row
#'   per cell when `transposed = TRUE`).
#' @param ncomponents Number of dimensions of the embedding.
#' @param ntop Number of features with the highest variance to use.
#' @param subset_row The features to use (names, 1-based positions or a
#'   logical vector), instead of the `ntop` most variable.
#' @param transposed Whether `x` has one row per cell (then all its columns are
#'   used).
#' @param labels `NULL` (unsupervised), the name of a column of `colData(x)`,
#'   or one label per cell. See [ivis()] for what each type of label trains.
#' @param model An embedding made by `calculateIvis()` or `runIvis()` (with its
#'   `"model"` attribute), or a trained `ivis_model`: the cells are embedded
#'   with that model, without training.
#' @param assay.type The assay to use.
#' @param exprs_values Former name of `assay.type`.
#' @param dimred The name of a reduced dimension to use instead of an assay.
#' @param n_dimred The columns of `dimred` to use: a number `n` for the first
#'   `n`, or their 1-based positions; `NULL` uses all of them.
#' @param name The name of the reduced dimension to store.
#' @param ... For `runIvis()`, arguments of `calculateIvis()`; for
#'   `calculateIvis()`, further arguments of [ivis()].
#' @return `calculateIvis()`: a matrix with one row per cell and
#'   `ncomponents` columns (`IVIS1`, `IVIS2`, ...), with the attributes
#'   `"model"` and `"ivis_input"`. `runIvis()`: `x` with this matrix as
#'   `reducedDim(x, name)`.
#' @seealso [ivis()], [RunIvis()] for Seurat objects.
#' @examples
#' if (ivis_available() && requireNamespace("SingleCellExperiment", quietly = TRUE)) {
#'   counts <- matrix(rpois(40 * 60, 5), nrow = 40,
#'                    dimnames = list(paste0("gene", 1:40), paste0("cell", 1:60)))
#'   sce <- SingleCellExperiment::SingleCellExperiment(
#'     assays = list(logcounts = log1p(counts)),
#'     colData = data.frame(group = rep(c("a", "b"), 30))
#'   )
#'   sce <- runIvis(sce, labels = "group", epochs = 5, verbose = 0)
#'   head(SingleCellExperiment::reducedDim(sce, "IVIS"))
#' }
#' @export
calculateIvis <- function(x, ...) {
  UseMethod("calculateIvis")
}

#' @rdname calculateIvis
#' @export
calculateIvis.default <- function(x, ncomponents = 2L, ntop = 500, subset_row = NULL,
                                  transposed = FALSE, labels = NULL, model = NULL, ...) {
  dots <- list(...)
  check_renamed_args(dots, c(embedding_dims = "ncomponents", Y = "labels"), "calculateIvis")
  trained <- trained_model(model)
  if (!is.matrix(x) && !inherits(x, "Matrix") && length(dim(x)) == 2L) x <- as.matrix(x)
  input <- list()
  if (!transposed) {
    known <- trained$input$subset_row
    rows <- if (is.null(subset_row) && !is.null(known)) {
      select_rows(x, known)
    } else if (is.null(subset_row)) {
      most_variable_rows(x, ntop)
    } else {
      select_rows(x, subset_row)
    }
    x <- x[rows, , drop = FALSE]
    input$subset_row <- rownames(x) %||% rows
    x <- if (inherits(x, "Matrix")) Matrix::t(x) else t(x)
  }
  Y <- cell_labels(labels, NULL, NROW(x), "colData")
  embedding <- embed_cells(x, Y, trained$model, ncomponents, dots, "calculateIvis")
  structure(
    as_r_matrix(embedding, rownames(x), paste0("IVIS", seq_len(ncol(embedding)))),
    model = attr(embedding, "model"), ivis_input = input
  )
}

#' @rdname calculateIvis
#' @export
calculateIvis.SummarizedExperiment <- function(x, ..., assay.type = "logcounts",
                                               exprs_values = NULL, labels = NULL) {
  need_package("SummarizedExperiment", "calculateIvis",
               "BiocManager::install(\"SummarizedExperiment\")")
  assay.type <- exprs_values %||% assay.type
  assays <- SummarizedExperiment::assayNames(x)
  check_choice(assay.type, assays, "assay", "assays", "object", paste(
    "Name one with `assay.type`, or use `dimred` for a reduced dimension."
  ))
  Y <- cell_labels(labels, SummarizedExperiment::colData(x), ncol(x), "colData")
  calculateIvis.default(SummarizedExperiment::assay(x, assay.type), labels = Y, ...)
}

#' @rdname calculateIvis
#' @export
calculateIvis.SingleCellExperiment <- function(x, ..., dimred = NULL, n_dimred = NULL,
                                               assay.type = "logcounts", exprs_values = NULL,
                                               labels = NULL, model = NULL) {
  need_package("SingleCellExperiment", "calculateIvis",
               "BiocManager::install(\"SingleCellExperiment\")")
  # New cells are read as the model's training cells were, unless told otherwise.
  known <- trained_model(model)$input
  if (is.null(dimred) && missing(assay.type) && is.null(exprs_values) &&
      !is.null(known$dimred)) {
    dimred <- known$dimred
    n_dimred <- n_dimred %||% known$n_dimred
  }
  if (is.null(dimred)) {
    return(calculateIvis.SummarizedExperiment(x, ..., assay.type = assay.type,
                                              exprs_values = exprs_values, labels = labels,
                                              model = model))
  }
  available <- SingleCellExperiment::reducedDimNames(x)
  check_choice(dimred, available, "reduced dimension", "reduced dimensions", "object", paste(
    "Name one with `dimred`, compute it first (for example scater::runPCA()), or leave",
    "`dimred` out to use the assay `assay.type`."
  ))
  reduced <- SingleCellExperiment::reducedDim(x, dimred)
  owner <- sprintf("reducedDim(x, \"%s\")", dimred)
  columns <- if (is.null(n_dimred)) {
    seq_len(ncol(reduced))
  } else if (length(n_dimred) == 1L) {
    seq_len(check_positions(n_dimred, ncol(reduced), "n_dimred", "column", owner))
  } else {
    check_positions(n_dimred, ncol(reduced), "n_dimred", "column", owner)
  }
  Y <- cell_labels(labels, SummarizedExperiment::colData(x), ncol(x), "colData")
  embedding <- calculateIvis.default(reduced[, columns, drop = FALSE], transposed = TRUE,
                                     labels = Y, model = model, ...)
  attr(embedding, "ivis_input") <- list(dimred = dimred, n_dimred = columns)
  embedding
}

#' @rdname calculateIvis
#' @export
runIvis <- function(x, ..., name = "IVIS") {
  need_package("SingleCellExperiment", "runIvis",
               "BiocManager::install(\"SingleCellExperiment\")")
  if (!methods::is(x, "SingleCellExperiment")) {
    stop(sprintf(paste0(
      "runIvis() takes a SingleCellExperiment, not %s. calculateIvis() returns the ",
      "embedding of a matrix or SummarizedExperiment; RunIvis() takes a Seurat object."
    ), describe_class(x)), call. = FALSE)
  }
  SingleCellExperiment::reducedDim(x, name) <- calculateIvis(x, ...)
  x
}

# The trained ivis_model in `model` (an ivis_model, or an embedding made by calculateIvis()
# carrying one) and what it was trained on, as list(model, input); both NULL for NULL.
trained_model <- function(model) {
  if (is.null(model) || inherits(model, "ivis_model")) return(list(model = model, input = NULL))
  if (inherits(attr(model, "model"), "ivis_model")) {
    return(list(model = attr(model, "model"), input = attr(model, "ivis_input")))
  }
  stop(sprintf(paste0(
    "`model` must be an embedding made by runIvis() or calculateIvis() (such as ",
    "reducedDim(sce, \"IVIS\"), which carries its model) or a trained ivis model, not %s%s."
  ), describe_class(model),
  if (is.matrix(model)) " without a model (subsetting cells drops it)" else ""),
  call. = FALSE)
}

# The positions of the `ntop` rows of `x` with the highest variance.
most_variable_rows <- function(x, ntop) {
  if (!is.numeric(ntop) || length(ntop) != 1L || is.na(ntop) || ntop < 1) {
    stop("`ntop` must be a positive whole number of features.", call. = FALSE)
  }
  if (inherits(x, "Matrix")) {
    means <- Matrix::rowMeans(x)
    variances <- Matrix::rowMeans(x^2) - means^2
  } else {
    variances <- rowMeans((x - rowMeans(x))^2)
  }
  utils::head(order(variances, decreasing = TRUE), ntop)
}

# The positions of the rows of `x` named by `subset_row` (names, positions or logical).
select_rows <- function(x, subset_row) {
  if (is.character(subset_row)) {
    unknown <- setdiff(subset_row, rownames(x))
    if (length(unknown)) {
      stop(sprintf("%d of the %d features in `subset_row` %s not among the rows of `x`: %s.",
                   length(unknown), length(subset_row),
                   if (length(unknown) == 1L) "is" else "are", quoted(unknown, 5L)),
           call. = FALSE)
    }
    return(match(subset_row, rownames(x)))
  }
  if (is.logical(subset_row)) {
    if (length(subset_row) != nrow(x) || anyNA(subset_row)) {
      stop(sprintf("A logical `subset_row` needs one TRUE or FALSE per row of `x` (%d).",
                   nrow(x)), call. = FALSE)
    }
    return(which(subset_row))
  }
  check_positions(subset_row, nrow(x), "subset_row", "row", "`x`")
}
