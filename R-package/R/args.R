# Marshalling of constructor arguments: only what the caller supplied is forwarded, so the
# defaults of the Python core stay the single source of truth; whole numbers are made
# integers in one place.

# Parameters of the Python `Ivis` constructor that take whole numbers.
integer_params <- c(
  "embedding_dims", "k", "batch_size", "epochs", "n_epochs_without_progress",
  "n_trees", "ntrees", "search_k", "verbose", "random_state"
)

# The arguments supplied in `call` (from match.call()), evaluated in `env`, in the order of
# the function's formals.
capture_args <- function(call, env) {
  supplied <- as.character(names(as.list(call)[-1L]))
  supplied <- supplied[nzchar(supplied)]
  if (length(supplied) == 0L) return(structure(list(), names = character()))
  mget(supplied, envir = env)
}

# Coerces supplied arguments for Python, without touching Python: whole numbers in
# `integer_params` become integers and a 1-based R neighbour matrix becomes 0-based.
# Anything else is passed on unchanged, so that the Python core validates it and its
# message reaches the user.
prepare_args <- function(args) {
  for (name in intersect(names(args), integer_params)) {
    args[name] <- list(as_integer_param(args[[name]], name))
  }
  if (!is.null(args$neighbour_matrix)) {
    args["neighbour_matrix"] <- list(neighbour_matrix_to_0_based(args$neighbour_matrix))
  }
  if (is.character(args$annoy_index_path) && length(args$annoy_index_path) == 1L &&
      !is.na(args$annoy_index_path)) {
    args$annoy_index_path <- path.expand(args$annoy_index_path)
  }
  args
}

as_integer_param <- function(x, name) {
  if (is.null(x) || inherits(x, "python.builtin.object") || length(x) != 1L) return(x)
  if (is.na(x)) {
    stop(sprintf(
      "`%s` is NA: give a whole number, or leave `%s` out to use its default.", name, name
    ), call. = FALSE)
  }
  if (is.logical(x)) return(as.integer(x))
  if (is.numeric(x) && is.finite(x) && x == trunc(x)) {
    # Whole numbers beyond R's integer range stay doubles here and become Python ints
    # in to_python_args().
    if (abs(x) <= .Machine$integer.max) return(as.integer(x))
    return(structure(x, ivis_whole = TRUE))
  }
  x
}

#' Validates a 1-based R neighbour matrix and returns it 0-based (integer matrix).
#' @noRd
neighbour_matrix_to_0_based <- function(x) {
  if (inherits(x, "python.builtin.object")) return(x) # a Python sequence: already 0-based
  if (is.data.frame(x)) x <- as.matrix(x)
  if (!is.matrix(x) || !(is.numeric(x) || is.logical(x) && all(is.na(x)))) {
    stop(sprintf(paste0(
      "`neighbour_matrix` must be a numeric matrix of 1-based row indices (one row per ",
      "sample, one column per neighbour), not %s."
    ), describe_class(x)), call. = FALSE)
  }
  n <- nrow(x)
  if (anyNA(x)) {
    at <- which(is.na(x), arr.ind = TRUE)[1L, ]
    stop(sprintf(paste0(
      "`neighbour_matrix` has %d missing value(s) (the first at row %d, column %d); every ",
      "entry must be the 1-based row index of a neighbour."
    ), sum(is.na(x)), at[[1L]], at[[2L]]), call. = FALSE)
  }
  fractional <- x != trunc(x)
  if (any(fractional)) {
    at <- which(fractional, arr.ind = TRUE)[1L, ]
    stop(sprintf(paste0(
      "`neighbour_matrix` must hold whole numbers (1-based row indices); found %s at ",
      "row %d, column %d."
    ), format(x[at[[1L]], at[[2L]]]), at[[1L]], at[[2L]]), call. = FALSE)
  }
  outside <- x < 1 | x > n
  if (any(outside)) {
    at <- which(outside, arr.ind = TRUE)[1L, ]
    hint <- if (any(x == 0) && all(x >= 0 & x < n)) {
      " It looks 0-based (as in Python): add 1 to every entry."
    } else {
      ""
    }
    stop(sprintf(paste0(
      "`neighbour_matrix` holds 1-based row indices, so every entry must lie in 1..%d ",
      "(its number of rows); found %s at row %d, column %d.%s"
    ), n, format(x[at[[1L]], at[[2L]]]), at[[1L]], at[[2L]], hint), call. = FALSE)
  }
  y <- x - 1
  storage.mode(y) <- "integer"
  dimnames(y) <- NULL
  y
}

# The prepared arguments as Python objects (needs Python).
to_python_args <- function(args) {
  for (name in names(args)) {
    x <- args[[name]]
    if (isTRUE(attr(x, "ivis_whole"))) {
      # convert = FALSE: converted back to R, the Python int would wrap around.
      args[[name]] <- reticulate::import_builtins(convert = FALSE)$int(format(x, scientific = FALSE))
    } else if (name == "neighbour_matrix" && is.matrix(x)) {
      args[[name]] <- reticulate::np_array(x, dtype = "int64", order = "C")
    }
  }
  args
}

describe_class <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.matrix(x)) return(sprintf("a %s matrix", typeof(x)))
  sprintf("an object of class '%s'", paste(class(x), collapse = "/"))
}
