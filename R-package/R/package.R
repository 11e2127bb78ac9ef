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
#' [install_ivis()] creates) comes before other Pythons on the system. When no
#' Python is chosen at all, ivis says to run [install_ivis()] rather than let
#' 'reticulate' download a Python (unless `RETICULATE_PYTHON = "managed"` asks
#' for that).
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
  # Only declares the import: no Python is chosen or started here. (When Python is already
  # running, reticulate would import at once, and a missing core would stop the package
  # from loading: then the import waits for the first use, in ivis_core().)
  if (!reticulate::py_available(initialize = FALSE)) {
    ivis_py <<- reticulate::import("ivis", delay_load = list(environment = "r-ivis"))
  }
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
    found <- python_in(python)
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
    running_before <- reticulate::py_available(initialize = FALSE)
    choose_python()
    imported <- tryCatch(without_managed_python(
      if (is.null(ivis_py)) reticulate::import("ivis") else ivis_py$`__name__` # forces the delayed import
    ), error = identity)
    if (inherits(imported, "error")) {
      reason <- conditionMessage(imported)
      stop(other_python_message(reason, running_before) %||% core_missing_message(reason),
           call. = FALSE)
    }
    module <- if (is.null(ivis_py)) imported else ivis_py
    problem <- module_problem(module)
    if (!is.null(problem)) stop(core_missing_message(problem), call. = FALSE)
    .state$core <- module
  }
  .state$core
}

# Makes sure a Python has been chosen for ivis before reticulate is asked to start one, so
# that reticulate never falls back to downloading a Python manager and a Python: the
# running Python, RETICULATE_PYTHON, IVIS_PYTHON, an 'r-ivis' environment, or any other
# choice reticulate knows of (use_python(), an active virtual environment, ...). Stops with
# the package's own message when there is none, unless the user asked for reticulate's
# managed Python.
choose_python <- function() {
  if (reticulate::py_available(initialize = FALSE) || managed_python_wanted()) {
    return(invisible(TRUE))
  }
  use_ivis_python()
  # Outside of Python's start, reticulate only reports what it would choose; where that is
  # its own managed Python (NULL), starting would download one.
  config <- tryCatch(reticulate::py_discover_config("ivis"), error = identity)
  if (inherits(config, "error")) {
    stop(core_missing_message(sub("\n.*", "", conditionMessage(config))), call. = FALSE)
  }
  if (!is.list(config) || is.null(config$python)) stop(not_installed_message(), call. = FALSE)
  invisible(TRUE)
}

not_installed_message <- function() {
  paste0(
    "The ivis Python core is not installed: there is no Python environment 'r-ivis' (looked ",
    "in ", reticulate::virtualenv_root(), " and among conda environments) and no Python ",
    "chosen for ivis (IVIS_PYTHON or RETICULATE_PYTHON).\n",
    "Run ivis::install_ivis() once, then restart R. Or set IVIS_PYTHON (or RETICULATE_PYTHON) ",
    "to a Python that has the ivis core.\n",
    "ivis::ivis_sitrep() shows what was found."
  )
}

# When Python was already running before ivis needed it and is not the Python that has the
# ivis core, the message that says so (restarting R is the fix, not reinstalling); else NULL.
other_python_message <- function(reason, running_before) {
  if (!running_before) return(NULL)
  running <- tryCatch(reticulate::py_config()$python, error = function(e) NULL)
  wanted <- expected_python()
  if (is.null(running) || is.null(wanted) || same_file(running, wanted)) return(NULL)
  reason <- trimws(sub("\nRun `reticulate::py_last_error\\(\\)` for details\\.$", "", reason))
  sprintf(paste0(
    "The ivis Python core could not be loaded (%s).\n",
    "R already runs the Python at %s: it was started before ivis needed Python (by another ",
    "package or a reticulate call), and R cannot change its Python within a session. The ",
    "ivis core is installed for %s. Restart R and use ivis before anything else starts ",
    "Python, or set RETICULATE_PYTHON=\"%s\" (for example in ~/.Renviron) so that every ",
    "package uses that Python."
  ), reason, running, wanted, wanted)
}

# The Python ivis would use in a fresh session (IVIS_PYTHON, else the 'r-ivis' virtual
# environment), if it exists; else NULL.
expected_python <- function() {
  python <- Sys.getenv("IVIS_PYTHON", unset = "")
  if (nzchar(python)) {
    python <- python_in(path.expand(python))
    return(if (length(python)) python else NULL)
  }
  python <- python_in(virtualenv_folder("r-ivis"))
  if (length(python)) python else NULL
}

# The Python executable of an environment folder (or `path` itself if it is a file), or
# character() when there is none.
python_in <- function(path) {
  if (!dir.exists(path)) return(if (file.exists(path)) path else character())
  candidates <- file.path(path, c("bin/python", "bin/python3", "Scripts/python.exe", "python.exe"))
  utils::head(candidates[file.exists(candidates)], 1L)
}

same_file <- function(a, b) {
  # A virtual environment's bin/python links to its starter: compare the paths as given
  # and, failing that, the environment folders.
  norm <- function(p) normalizePath(p, winslash = "/", mustWork = FALSE)
  identical(norm(a), norm(b)) || identical(sub("/(bin|Scripts)/[^/]*$", "", a),
                                           sub("/(bin|Scripts)/[^/]*$", "", b))
}

# NULL when `module` (the imported 'ivis') is a core this package can drive, else why not.
module_problem <- function(module) {
  file <- py_attr_or_null(module, "__file__")
  if (is.null(file) || !is.character(file)) {
    # A folder named 'ivis' without __init__.py, found first on sys.path (often the
    # working directory), is imported as an empty namespace package.
    folders <- tryCatch(as.character(reticulate::py_to_r(
      reticulate::import_builtins()$list(reticulate::py_get_attr(module, "__path__"))
    )), error = function(e) character())
    if (length(folders)) {
      return(sprintf(paste0(
        "this Python has no ivis core: what it imported as 'ivis' is the folder %s, a folder ",
        "named 'ivis' (in the working directory, %s, or on PYTHONPATH) taken as an empty ",
        "namespace package. Run ivis::install_ivis() and restart R, or set IVIS_PYTHON to a ",
        "Python that has the core; renaming that folder avoids the confusion"
      ), paste0("'", folders, "'", collapse = ", "), getwd()))
    }
  }
  core_version_problem(py_attr_or_null(module, "__version__"), module_file(module))
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
