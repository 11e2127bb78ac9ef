#' Is the ivis Python core available?
#'
#' `ivis_available()` tells whether the ivis Python core can be used: a Python
#' is found (see [ivis-package] for how it is chosen) and it has an `ivis`
#' module of the right major version. It starts Python if needed, but never
#' fails. Use it to guard examples, tests and vignettes.
#'
#' @return `TRUE` or `FALSE`.
#' @seealso [ivis_sitrep()] for the details, [install_ivis()] to install the core.
#' @examples
#' ivis_available()
#' @export
ivis_available <- function() {
  isTRUE(tryCatch(core_status()$ok, error = function(e) FALSE))
}

#' Situation report on the ivis Python core
#'
#' Prints which Python R uses, whether it has the ivis Python core and which
#' version, and the Keras version and backend; then what to do if something is
#' missing. Starts Python if it is not running yet.
#'
#' @return Invisibly, a list with elements `ok`, `python`, `python_version`,
#'   `ivis_version`, `ivis_path`, `keras_version`, `keras_backend`,
#'   `r_package_version` and `problem` (`NA` when there is none).
#' @seealso [ivis_available()], [install_ivis()]
#' @examples
#' \donttest{
#' ivis_sitrep()
#' }
#' @export
ivis_sitrep <- function() {
  status <- core_status(keras = TRUE)
  show <- function(x) if (is.null(x) || is.na(x)) "-" else x
  cat("ivis situation report\n")
  cat("  R package:          ", status$r_package_version, "\n", sep = "")
  for (variable in c("RETICULATE_PYTHON", "IVIS_PYTHON")) {
    value <- Sys.getenv(variable, unset = "")
    if (nzchar(value)) cat(sprintf("  %-20s%s\n", paste0(variable, ":"), value))
  }
  cat("  Python:             ", show(status$python),
      if (!is.na(status$python_version)) paste0(" (", status$python_version, ")"), "\n", sep = "")
  cat("  ivis core:          ", show(status$ivis_version),
      if (!is.na(status$ivis_path)) paste0(" at ", status$ivis_path), "\n", sep = "")
  cat("  Keras:              ", show(status$keras_version),
      if (!is.na(status$keras_backend)) paste0(" (backend: ", status$keras_backend, ")"),
      "\n", sep = "")
  if (status$ok) {
    cat("ivis is ready to use.\n")
  } else {
    cat(strwrap(paste("Problem:", status$problem), exdent = 2), sep = "\n")
  }
  invisible(status)
}

# What is known about the Python side; starts Python (honouring IVIS_PYTHON).
core_status <- function(keras = FALSE) {
  status <- list(
    ok = FALSE, python = NA_character_, python_version = NA_character_,
    ivis_version = NA_character_, ivis_path = NA_character_,
    keras_version = NA_character_, keras_backend = NA_character_,
    r_package_version = as.character(utils::packageVersion("ivis")),
    problem = NA_character_
  )
  fail <- function(problem) {
    status$problem <- problem
    status
  }
  running_before <- reticulate::py_available(initialize = FALSE)
  chosen <- tryCatch(choose_python(), error = identity)
  if (inherits(chosen, "error")) return(fail(conditionMessage(chosen)))
  started <- tryCatch(without_managed_python(reticulate::py_config()), error = identity)
  if (inherits(started, "error")) {
    return(fail(paste0(
      "no usable Python was found (", conditionMessage(started), "). Run ",
      "ivis::install_ivis() and restart R, or set IVIS_PYTHON or RETICULATE_PYTHON."
    )))
  }
  status$python <- started$python
  status$python_version <- as.character(started$version)

  module <- tryCatch(reticulate::import("ivis"), error = identity)
  if (inherits(module, "error")) {
    reason <- sub("\n.*", "", conditionMessage(module))
    return(fail(other_python_message(reason, running_before) %||% paste0(
      "this Python cannot import the ivis core (", reason, "). Run ivis::install_ivis() ",
      "and restart R, or set IVIS_PYTHON to a Python that has it."
    )))
  }
  version <- py_attr_or_null(module, "__version__")
  status$ivis_path <- module_file(module) %||% NA_character_
  status$ivis_version <- if (is.null(version)) "none (no __version__)" else as.character(version)
  problem <- module_problem(module)
  if (keras) {
    info <- tryCatch({
      # The core's importer hides TensorFlow's start-up lines; a core without it imports plainly.
      k <- if (reticulate::py_module_available("ivis._keras_import")) {
        reticulate::import("ivis._keras_import")$import_keras()
      } else {
        reticulate::import("keras")
      }
      list(version = py_attr_or_null(k, "__version__"), backend = k$backend$backend())
    }, error = function(e) list(version = NULL, backend = NULL))
    status$keras_version <- as.character(info$version %||% "not installed")
    status$keras_backend <- as.character(info$backend %||% NA_character_)
  }
  if (!is.null(problem)) return(fail(problem))
  status$ok <- TRUE
  status
}

`%||%` <- function(x, y) if (is.null(x)) y else x
