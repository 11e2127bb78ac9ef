# Conversions between R data and the arrays the Python core takes and returns.

# Checks `X` and returns it as a dense double matrix or as a sparse 'dgCMatrix' (R only).
# `action` (the method being called) words the message for values Python cannot take.
check_X <- function(X, arg = "X", action = "fit") {
  if (inherits(X, "python.builtin.object")) return(X)
  if (inherits(X, "Matrix")) {
    if (!requireNamespace("Matrix", quietly = TRUE)) {
      stop(sprintf("`%s` is a Matrix object, but the 'Matrix' package is not installed.", arg),
           call. = FALSE)
    }
    if (inherits(X, "sparseMatrix")) {
      X <- methods::as(methods::as(methods::as(X, "CsparseMatrix"), "generalMatrix"), "dMatrix")
      check_values(X, arg, action)
      return(X)
    }
    X <- as.matrix(X)
  }
  if (is.data.frame(X)) {
    ok <- vapply(X, function(col) is.numeric(col) || is.logical(col), logical(1L))
    if (!all(ok)) {
      bad <- names(X)[!ok]
      kinds <- vapply(X[!ok], function(col) class(col)[[1L]], character(1L))
      stop(sprintf(paste0(
        "`%s` must be numeric, but its column%s %s %s not (%s). Drop %s or encode %s as ",
        "numbers (for example with model.matrix()) first."
      ), arg, if (length(bad) > 1L) "s" else "", paste0("'", bad, "'", collapse = ", "),
      if (length(bad) > 1L) "are" else "is", paste(kinds, collapse = ", "),
      if (length(bad) > 1L) "them" else "it", if (length(bad) > 1L) "them" else "it"),
      call. = FALSE)
    }
    rn <- if (.row_names_info(X) > 0L) row.names(X) else NULL
    X <- as.matrix(X)
    if (is.logical(X)) storage.mode(X) <- "double"
    rownames(X) <- rn
  }
  if (!is.matrix(X)) {
    stop(sprintf(paste0(
      "`%s` must be a numeric matrix, a data frame or a sparse Matrix, not %s. ",
      "For a single sample use matrix(x, nrow = 1)."
    ), arg, describe_class(X)), call. = FALSE)
  }
  if (!(is.numeric(X) || is.logical(X))) {
    stop(sprintf("`%s` must be numeric, but it is a %s matrix.", arg, typeof(X)), call. = FALSE)
  }
  if (!is.double(X)) storage.mode(X) <- "double"
  check_values(X, arg, action)
  X
}

# The network computes in 32-bit floats: larger magnitudes would become infinite.
float32_max <- 3.4028234663852886e38

# Stops, naming the first offending (1-based) row and column, when `X` holds NA, NaN,
# infinite values or values beyond the range of 32-bit floats.
check_values <- function(X, arg, action) {
  values <- if (inherits(X, "dgCMatrix")) X@x else X
  if (all(is.finite(values)) && (length(values) == 0L || max(abs(values)) <= float32_max)) {
    return(invisible(X))
  }
  bad <- which(!is.finite(values) | abs(values) > float32_max)[[1L]]
  if (inherits(X, "dgCMatrix")) {
    row <- X@i[[bad]] + 1L
    col <- findInterval(bad - 1L, X@p, left.open = FALSE, rightmost.closed = FALSE)
  } else {
    row <- (bad - 1L) %% nrow(X) + 1L
    col <- (bad - 1L) %/% nrow(X) + 1L
  }
  value <- values[[bad]]
  where <- sprintf("row %d, column %d", row, col)
  if (!is.finite(value)) {
    stop(sprintf(paste0(
      "`%s` has %d NA, NaN or infinite value%s (the first, %s, at %s). Remove or impute ",
      "them before calling %s()."
    ), arg, sum(!is.finite(values)), if (sum(!is.finite(values)) == 1L) "" else "s",
    format(value), where, action), call. = FALSE)
  }
  stop(sprintf(paste0(
    "`%s` has values too large for the network's 32-bit numbers (the first, %s, at %s; ",
    "the limit is about 3.4e38). Rescale `%s`, for example with scale(), before calling %s()."
  ), arg, format(value), where, arg, action), call. = FALSE)
}

x_to_python <- function(X) {
  if (inherits(X, "python.builtin.object")) return(X)
  if (inherits(X, "dgCMatrix")) {
    return(reticulate::r_to_py(X, convert = FALSE)$tocsr())
  }
  reticulate::np_array(unname(X), dtype = "float64", order = "C")
}

x_rownames <- function(X) {
  if (inherits(X, "python.builtin.object")) return(NULL)
  rownames(X)
}

x_nrow <- function(X) {
  if (inherits(X, "python.builtin.object")) {
    return(as.integer(reticulate::py_to_r(reticulate::py_len(X))))
  }
  nrow(X)
}

# Checks `Y` and returns it ready for Python conversion (R only): a character vector
# (NA = missing label) for classification, a double vector or matrix for regression.
check_Y <- function(Y, n) {
  if (is.null(Y) || inherits(Y, "python.builtin.object")) return(Y)
  if (is.data.frame(Y)) {
    if (ncol(Y) != 1L) {
      stop(sprintf(paste0(
        "`Y` is a data frame with %d columns; give a vector (one label or value per row ",
        "of `X`) or a numeric matrix."
      ), ncol(Y)), call. = FALSE)
    }
    Y <- Y[[1L]]
  }
  if (NROW(Y) != n) {
    stop(sprintf("`Y` has %d labels but `X` has %d rows; give one label per row of `X`.",
                 NROW(Y), n), call. = FALSE)
  }
  if (is.factor(Y)) return(Y)
  if (is.character(Y) || is.logical(Y)) {
    return(structure(as.character(Y), ivis_labels = TRUE))
  }
  if (is.numeric(Y)) {
    if (is.matrix(Y)) {
      storage.mode(Y) <- "double"
      return(unname(Y))
    }
    return(as.double(Y))
  }
  stop(sprintf(paste0(
    "`Y` must be a factor or character vector (classes; NA marks an unlabelled sample) ",
    "or numeric (regression), not %s."
  ), describe_class(Y)), call. = FALSE)
}

y_to_python <- function(Y) {
  if (is.null(Y) || inherits(Y, "python.builtin.object")) return(Y)
  np <- reticulate::import("numpy", convert = FALSE)
  if (is.factor(Y)) {
    # A pandas Categorical keeps the levels, in their order, as the model's classes.
    pd <- reticulate::import("pandas", convert = FALSE)
    codes <- as.integer(Y) - 1L
    codes[is.na(codes)] <- -1L
    return(pd$Categorical$from_codes(
      np$asarray(codes, dtype = "int64"),
      categories = np$array(reticulate::r_to_py(as.list(levels(Y))), dtype = "object")
    ))
  }
  if (isTRUE(attr(Y, "ivis_labels"))) {
    # Python strings, None for a missing label (NA_character_ would become the string "NA").
    labels <- as.list(as.character(Y))
    labels[is.na(Y)] <- list(NULL)
    return(np$array(reticulate::r_to_py(labels), dtype = "object"))
  }
  if (is.matrix(Y)) return(reticulate::np_array(Y, dtype = "float64", order = "C"))
  np$array(Y, dtype = "float64")
}

# A Python array result as an R double matrix with the given dimnames.
as_r_matrix <- function(x, rownames = NULL, colnames = NULL) {
  if (inherits(x, "python.builtin.object")) x <- reticulate::py_to_r(x)
  if (!is.matrix(x)) x <- matrix(as.vector(x), ncol = 1L)
  if (!is.double(x)) storage.mode(x) <- "double"
  if (!is.null(rownames) && length(rownames) != nrow(x)) rownames <- NULL
  if (!is.null(colnames) && length(colnames) != ncol(x)) colnames <- NULL
  dimnames(x) <- if (is.null(rownames) && is.null(colnames)) NULL else list(rownames, colnames)
  x
}

# Evaluates `expr`; a Python exception becomes an R error whose message is the Python
# message (its class and the Python exception object are kept on the condition).
with_python_errors <- function(expr) {
  tryCatch(expr, python.builtin.BaseException = function(e) {
    type <- sub("^python\\.builtin\\.", "", class(e)[[1L]])
    python_message <- tryCatch(reticulate::py_str(e), error = function(err) conditionMessage(e))
    if (!nzchar(python_message)) python_message <- type
    stop(errorCondition(
      r_syntax(python_message),
      class = c(paste0("ivis_", type), "ivis_python_error"),
      python_type = type,
      python_message = python_message,
      python_exception = e,
      call = NULL
    ))
  })
}

# A message of the Python core written for R users: `Ivis(k=15)` becomes `ivis(k = 15)`,
# `overwrite=True` becomes `overwrite = TRUE`, and True, False and None become TRUE,
# FALSE and NULL.
r_syntax <- function(message) {
  values <- function(text) {
    text <- gsub("\\bTrue\\b", "TRUE", text, perl = TRUE)
    text <- gsub("\\bFalse\\b", "FALSE", text, perl = TRUE)
    gsub("\\bNone\\b(?! of)", "NULL", text, perl = TRUE)
  }
  message <- gsub("\\bIvis\\(", "ivis(", message, perl = TRUE)
  message <- gsub("\\b([A-Za-z_][A-Za-z0-9_]*)=(?=[^=\\s])", "\\1 = ", message, perl = TRUE)
  values(message)
}
