# What the Seurat and SingleCellExperiment entry points share: the check for a suggested
# package, labels taken from a column of the cells' annotations, and the step that either
# trains a model (through ivis_embed()) or embeds cells with one already trained.

# Stops, naming how to install it, unless the suggested package `package` is installed.
need_package <- function(package, fn, install) {
  if (!requireNamespace(package, quietly = TRUE)) {
    stop(sprintf(
      "%s() needs the R package '%s', which is not installed. Install it with %s.",
      fn, package, install
    ), call. = FALSE)
  }
  invisible(TRUE)
}

# The labels of `n` cells: `labels` is NULL, the name of a column of `annotations` (the
# cells' meta.data or colData, called `where` in messages), or one value per cell.
cell_labels <- function(labels, annotations, n, where) {
  if (is.null(labels)) return(NULL)
  if (!is.null(annotations) && is.character(labels) && length(labels) == 1L && n != 1L) {
    columns <- colnames(annotations)
    if (is.na(labels) || !labels %in% columns) {
      stop(sprintf(paste0(
        "labels = \"%s\" is not a column of the cells' %s; its columns are: %s. Name one ",
        "of them, or give one label per cell (NA for an unlabelled cell)."
      ), labels, where, quoted(columns)), call. = FALSE)
    }
    return(annotations[[labels]])
  }
  if (is.null(dim(labels)) && length(labels) != n) {
    stop(sprintf(paste0(
      "`labels` has %d value%s but there are %d cells: give %sone label per cell (NA for an ",
      "unlabelled cell)."
    ), length(labels), if (length(labels) == 1L) "" else "s", n,
    if (is.null(annotations)) "" else sprintf("the name of a column of the cells' %s, or ", where)),
    call. = FALSE)
  }
  labels
}

# Stops unless `name` is one of `available`, the names of the `what` (plural `whats`) of the
# `object` at hand; `fix` says what to do instead.
check_choice <- function(name, available, what, whats, object, fix) {
  if (is.character(name) && length(name) == 1L && !is.na(name) && name %in% available) {
    return(invisible(name))
  }
  stop(sprintf("This %s has no %s %s; its %s are: %s. %s", object, what,
               if (is.character(name)) quoted(name) else describe_class(name), whats,
               quoted(available), fix), call. = FALSE)
}

# Names in double quotes, separated by commas: the first `most` of them, then "...".
quoted <- function(x, most = Inf) {
  if (!length(x)) return("(none)")
  paste0(paste0("\"", utils::head(x, most), "\"", collapse = ", "),
         if (length(x) > most) ", ..." else "")
}

# Stops when `...` (arguments meant for ivis()) holds an argument that has another name
# here: `renamed` maps each such name to the argument to use instead.
check_renamed_args <- function(dots, renamed, fn) {
  clash <- intersect(names(dots), names(renamed))
  if (length(clash)) {
    stop(sprintf(
      "%s() takes %s instead of %s.", fn,
      paste0("`", renamed[clash], "`", collapse = ", "),
      paste0("`", clash, "`", collapse = ", ")
    ), call. = FALSE)
  }
  invisible(TRUE)
}

# The embedding of the cells in `X` (one row per cell) as a matrix with the model as
# attribute "model": trained on `X` (and `labels`) with the arguments in `dots` when
# `model` is NULL, else embedded by `model` without training.
embed_cells <- function(X, labels, model, embedding_dims, dots, fn) {
  if (is.null(model)) {
    return(do.call(ivis_embed, c(list(X, Y = labels, embedding_dims = embedding_dims), dots)))
  }
  if (!inherits(model, "ivis_model")) {
    stop(sprintf(
      "%s(): the model to embed new cells with must be a trained ivis model, not %s.",
      fn, describe_class(model)
    ), call. = FALSE)
  }
  if (!is.null(labels) || length(dots)) {
    given <- c(if (!is.null(labels)) "labels", names(dots))
    stop(sprintf(paste0(
      "%s(): with a trained model the new cells are only embedded, not trained on, so %s ",
      "cannot apply; leave %s out, or leave the model out to train a new one."
    ), fn, paste0("`", given, "`", collapse = ", "),
    if (length(given) > 1L) "them" else "it"), call. = FALSE)
  }
  embedding <- model$transform(X)
  attr(embedding, "model") <- model
  embedding
}

# Whole, distinct, 1-based positions within 1..`available`, as integers. `arg` is the
# argument's name; `unit` and `owner` word the message ("dimension", "the reduction \"pca\"").
check_positions <- function(positions, available, arg, unit, owner) {
  if (!is.numeric(positions) || !length(positions) || anyNA(positions) ||
      any(positions != trunc(positions))) {
    stop(sprintf("`%s` must be whole numbers, 1-based positions of the %ss of %s (1:%d).",
                 arg, unit, owner, available), call. = FALSE)
  }
  outside <- positions[positions < 1 | positions > available]
  if (length(outside)) {
    stop(sprintf(
      "`%s` asks for %s %s, but %s has %d %s%s: use %s within 1:%d.",
      arg, unit, paste(format(outside), collapse = ", "), owner, available, unit,
      if (available == 1L) "" else "s", arg, available
    ), call. = FALSE)
  }
  if (anyDuplicated(positions)) {
    stop(sprintf("`%s` names %s %s more than once.", arg, unit,
                 format(positions[anyDuplicated(positions)])), call. = FALSE)
  }
  as.integer(positions)
}
