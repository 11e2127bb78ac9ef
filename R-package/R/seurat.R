#' Run ivis on a Seurat object
#'
#' `RunIvis()` embeds the cells of a Seurat object with ivis, in the manner of
#' Seurat's `RunUMAP()`: from the dimensions `dims` of a reduction (`"pca"` by
#' default) or from the expression of `features` in an assay. It stores the
#' embedding as a dimensional reduction named `"ivis"` (key `"ivis_"`), which
#' `Seurat::DimPlot(object, reduction = "ivis")` draws, and keeps the trained
#' model with it to embed new cells later.
#'
#' Arguments for [ivis()] go in `...` (such as `epochs`, `k` or
#' `supervision_weight`); as in [ivis_embed()], `k` and `batch_size` are chosen
#' from the number of cells when not given.
#'
#' **Supervised and semi-supervised use.** `labels` names a column of the
#' object's meta.data (or gives one label per cell); training then also learns
#' to predict it. Cells whose label is `NA` are unlabelled: they shape the
#' embedding through the triplet loss only (semi-supervised training).
#'
#' **The model and new cells.** The trained model ([ivis()]) is kept in the
#' reduction's `misc` slot: `Misc(object[["ivis"]], "model")`, with what it was
#' trained on in `Misc(object[["ivis"]], "input")`. To embed new cells with it,
#' without training, pass the reduction as `reduction.model`:
#' `RunIvis(query, reduction.model = object[["ivis"]])`. The query is read as
#' the model was trained (the same features of the same assay and slot, or the
#' same dimensions of a reduction of the same name); a reduction must then lie
#' in the same space as the reference's, so a model trained on `features` is
#' the simpler choice for new data. The Python part of a model does not survive
#' `saveRDS()` of the object: save the model with
#' `Misc(object[["ivis"]], "model")$save_model(path)` and load it with
#' [load_ivis()]; a loaded model can be passed as `reduction.model` too.
#'
#' @param object A Seurat object.
#' @param dims The dimensions of `reduction` to use (1-based positions); `NULL`
#'   uses all of them.
#' @param reduction The reduction whose dimensions are the input.
#' @param features Names of features (genes) to use instead of a reduction.
#' @param assay The assay of `features`; `NULL` means the default assay.
#' @param slot The assay data `features` are read from: `"data"`,
#'   `"scale.data"` or `"counts"`.
#' @param labels `NULL` (unsupervised), the name of a column of the meta.data,
#'   or one label per cell. See [ivis()] for what each type of label trains.
#' @param reduction.model A `DimReduc` made by `RunIvis()` (or a trained
#'   `ivis_model`): the cells are embedded with its model, without training.
#' @param n.components Number of dimensions of the embedding.
#' @param reduction.name Name of the reduction to store.
#' @param reduction.key Key of the reduction: the prefix of its column names.
#' @param seed.use Seed of the training (`random_state` of [ivis()]); `NULL`
#'   for a different embedding on each run.
#' @param verbose Whether to print training progress.
#' @param ... Further arguments of [ivis()].
#' @return `object` with the reduction `reduction.name` added.
#' @seealso [ivis()], [runIvis()] for SingleCellExperiment objects.
#' @examples
#' if (ivis_available() && requireNamespace("SeuratObject", quietly = TRUE)) {
#'   pbmc <- SeuratObject::pbmc_small
#'   pbmc <- RunIvis(pbmc, dims = 1:10, epochs = 5, verbose = FALSE)
#'   head(SeuratObject::Embeddings(pbmc, "ivis"))
#' }
#' @export
RunIvis <- function(object, ...) {
  UseMethod("RunIvis")
}

#' @rdname RunIvis
#' @export
RunIvis.default <- function(object, ...) {
  stop(sprintf(paste0(
    "RunIvis() takes a Seurat object, not %s. For a SingleCellExperiment use runIvis(); ",
    "for a matrix (one row per cell) use ivis_embed()."
  ), describe_class(object)), call. = FALSE)
}

#' @rdname RunIvis
#' @export
RunIvis.Seurat <- function(object, dims = NULL, reduction = "pca", features = NULL,
                           assay = NULL, slot = "data", labels = NULL,
                           reduction.model = NULL, n.components = 2L,
                           reduction.name = "ivis", reduction.key = "ivis_",
                           seed.use = 42L, verbose = TRUE, ...) {
  need_package("SeuratObject", "RunIvis", "install.packages(\"Seurat\")")
  dots <- list(...)
  check_renamed_args(dots, c(embedding_dims = "n.components", random_state = "seed.use",
                             Y = "labels"), "RunIvis")
  model <- reduction.model
  if (inherits(reduction.model, "DimReduc")) {
    misc <- methods::slot(reduction.model, "misc")
    model <- misc$model
    if (is.null(model)) {
      stop("`reduction.model` holds no ivis model: give a reduction made by RunIvis().",
           call. = FALSE)
    }
    # New cells are read as the model's training cells were, unless told otherwise.
    input <- misc$input
    if (missing(dims) && missing(features)) {
      dims <- input$dims
      features <- input$features
    }
    if (missing(reduction) && !is.null(input$reduction)) reduction <- input$reduction
    if (missing(assay)) assay <- input$assay
    if (missing(slot) && !is.null(input$slot)) slot <- input$slot
  }
  if (!is.null(dims) && !is.null(features)) {
    stop("RunIvis() takes either `dims` (of a reduction) or `features`, not both.",
         call. = FALSE)
  }
  if (is.null(features)) {
    X <- seurat_reduction_input(object, reduction, dims)
    dims <- attr(X, "dims")
    assay <- SeuratObject::DefaultAssay(object[[reduction]])
    input <- list(reduction = reduction, dims = dims)
  } else {
    assay <- assay %||% SeuratObject::DefaultAssay(object)
    X <- seurat_feature_input(object, features, assay, slot)
    input <- list(features = features, assay = assay, slot = slot)
  }
  Y <- cell_labels(labels, object[[]], ncol(object), "meta.data")
  if (is.null(model)) {
    dots$random_state <- seed.use
    dots$verbose <- as.integer(isTRUE(verbose))
  }
  embedding <- embed_cells(X, Y, model, n.components, dots, "RunIvis")
  model <- attr(embedding, "model")
  attr(embedding, "model") <- NULL
  embedding <- as_r_matrix(embedding, colnames(object),
                           paste0(reduction.key, seq_len(ncol(embedding))))
  object[[reduction.name]] <- SeuratObject::CreateDimReducObject(
    embeddings = embedding, key = reduction.key, assay = assay, global = TRUE,
    misc = list(model = model, input = input)
  )
  SeuratObject::LogSeuratCommand(object)
}

# The dimensions `dims` (NULL: all) of reduction `reduction` of `object`, one row per cell,
# with the 1-based dimensions used as attribute "dims".
seurat_reduction_input <- function(object, reduction, dims) {
  available <- SeuratObject::Reductions(object)
  check_choice(reduction, available, "reduction", "reductions", "Seurat object", paste(
    "Name one with `reduction`, run Seurat::RunPCA() first, or use `features` instead."
  ))
  embeddings <- SeuratObject::Embeddings(object, reduction = reduction)
  dims <- if (is.null(dims)) seq_len(ncol(embeddings)) else
    check_positions(dims, ncol(embeddings), "dims", "dimension",
                    sprintf("the reduction \"%s\"", reduction))
  structure(embeddings[, dims, drop = FALSE], dims = dims)
}

# The expression of `features` in `slot` of `assay`, one row per cell.
seurat_feature_input <- function(object, features, assay, slot) {
  assays <- SeuratObject::Assays(object)
  check_choice(assay, assays, "assay", "assays", "Seurat object", "Name one with `assay`.")
  # SeuratObject 5 calls the slot a layer.
  args <- list(object, assay = assay)
  args[[if (utils::packageVersion("SeuratObject") >= "5.0.0") "layer" else "slot"]] <- slot
  data <- do.call(SeuratObject::GetAssayData, args)
  if (!is.character(features) || !length(features) || anyNA(features)) {
    stop("`features` must be the names of features (genes) of the assay.", call. = FALSE)
  }
  missing_features <- setdiff(features, rownames(data))
  if (length(missing_features)) {
    stop(sprintf(paste0(
      "%d of the %d `features` %s not in slot \"%s\" of assay \"%s\" (%d features): %s."
    ), length(missing_features), length(features),
    if (length(missing_features) == 1L) "is" else "are", slot, assay, nrow(data),
    quoted(missing_features, 5L)), call. = FALSE)
  }
  data <- data[features, , drop = FALSE]
  if (inherits(data, "Matrix")) Matrix::t(data) else t(data)
}
