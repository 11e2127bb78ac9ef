#' ivis: structure-preserving dimensionality reduction with siamese networks
#'
#' The R interface to the 'ivis' Python core. [ivis()] creates a model,
#' `model$fit(X)` trains it and `model$transform(X)` embeds data.
#'
#' Loading the package never starts Python: the 'ivis' Python module is
#' imported the first time it is needed. The environment variable
#' `IVIS_PYTHON` (the path to a Python executable or to a virtual environment
#' folder) selects the Python for ivis, unless `RETICULATE_PYTHON` is set,
#' which always wins. Without either, 'reticulate' looks for Python in its
#' usual order, in which a virtual environment named `"r-ivis"` (the one
#' [install_ivis()] creates) comes before other Pythons on the system.
#'
#' @seealso [install_ivis()], [ivis_sitrep()], [ivis()]
#' @keywords internal
#' @docType package
#' @name ivis-package
NULL

# The 'ivis' Python module, imported on first use (see .onLoad).
ivis_py <- NULL

# Package state: the checked Python core module once it has been imported.
.state <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  # Only declares the import: no Python is chosen or started here.
  ivis_py <<- reticulate::import(
    "ivis",
    delay_load = list(
      environment = "r-ivis",
      on_error = function(e) stop(core_missing_message(conditionMessage(e)), call. = FALSE)
    )
  )
}

# Applies IVIS_PYTHON (an interpreter or an environment folder) before Python starts. Called
# by every entry point that may start Python (the delayed import's before_load hook would
# be too late: reticulate starts Python before running it).
use_ivis_python <- function() {
  python <- Sys.getenv("IVIS_PYTHON", unset = "")
  if (!nzchar(python) || nzchar(Sys.getenv("RETICULATE_PYTHON", unset = "")) ||
      reticulate::py_available(initialize = FALSE)) {
    return(invisible(FALSE))
  }
  python <- path.expand(python)
  if (dir.exists(python)) {
    candidates <- file.path(python, c("bin/python", "bin/python3", "Scripts/python.exe", "python.exe"))
    found <- candidates[file.exists(candidates)]
    if (length(found) == 0L) {
      stop(sprintf(paste0(
        "IVIS_PYTHON is set to the folder '%s', which holds no Python executable ",
        "(looked for bin/python and Scripts/python.exe). Point IVIS_PYTHON at a Python ",
        "executable or a virtual environment that has the ivis core, or unset it."
      ), python), call. = FALSE)
    }
    python <- found[[1L]]
  } else if (!file.exists(python)) {
    stop(sprintf(paste0(
      "IVIS_PYTHON is set to '%s', which does not exist. Point it at a Python executable ",
      "(or a virtual environment folder) that has the ivis core, or unset it."
    ), python), call. = FALSE)
  }
  reticulate::use_python(python, required = TRUE)
  invisible(TRUE)
}

core_missing_message <- function(reason) {
  reason <- sub("\nRun `reticulate::py_last_error\\(\\)` for details\\.$", "", reason)
  paste0(
    "The ivis Python core could not be loaded (", trimws(reason), ").\n",
    "Install it with ivis::install_ivis() and restart R, or point the environment variable ",
    "IVIS_PYTHON (or RETICULATE_PYTHON) at a Python that has it.\n",
    "ivis::ivis_sitrep() shows which Python was found and what it has."
  )
}

# NULL when `version` is a core this R package can drive, else the reason it is not.
core_version_problem <- function(version, where = NULL) {
  at <- if (is.null(where)) "" else sprintf(" at %s", where)
  r_version <- utils::packageVersion("ivis")
  if (is.null(version) || !nzchar(version)) {
    return(sprintf(paste0(
      "the Python module 'ivis'%s has no __version__: it is not the ivis %s core (it may be ",
      "the unrelated 'ivis' 2.x release from PyPI). Run ivis::install_ivis() and restart R."
    ), at, r_version))
  }
  v <- tryCatch(numeric_version(version), error = function(e) NULL)
  if (is.null(v) || v[[1L, 1L]] != r_version[[1L, 1L]]) {
    return(sprintf(paste0(
      "the Python module 'ivis'%s is version %s, but this R package (%s) needs the %d.x core. ",
      "Run ivis::install_ivis() and restart R."
    ), at, version, r_version, r_version[[1L, 1L]]))
  }
  NULL
}

# The imported and checked 'ivis' Python module.
ivis_core <- function() {
  if (is.null(.state$core)) {
    use_ivis_python()
    ivis_py$`__name__` # forces the delayed import; its on_error hook explains a failure
    version <- py_attr_or_null(ivis_py, "__version__")
    problem <- core_version_problem(version, module_file(ivis_py))
    if (!is.null(problem)) stop(core_missing_message(problem), call. = FALSE)
    .state$core <- ivis_py
  }
  .state$core
}

module_file <- function(module) {
  file <- py_attr_or_null(module, "__file__")
  if (is.character(file) && length(file) == 1L) dirname(file) else NULL
}

# An attribute of a Python object converted to R, or NULL when it has none.
py_attr_or_null <- function(x, name) {
  if (!reticulate::py_has_attr(x, name)) return(NULL)
  reticulate::py_to_r(reticulate::py_get_attr(x, name))
}
