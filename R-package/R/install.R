#' Install the ivis Python core
#'
#' Installs the ivis Python core that this R package carries (its version is
#' the R package's), with pinned versions of its dependencies (TensorFlow,
#' Keras, NumPy, Annoy, ...) taken from the Python package index, into a
#' Python virtual environment or conda environment. The pins live in one file,
#' `system.file("python", "constraints.txt", package = "ivis")`. Neither a git
#' host nor the unrelated PyPI release named `ivis` (2.x) is ever asked for.
#'
#' Restart R after installing. By default the environment `"r-ivis"` is
#' created (in `reticulate::virtualenv_root()`); it is found automatically the
#' next time ivis needs Python, unless `RETICULATE_PYTHON` or `IVIS_PYTHON`
#' points elsewhere.
#'
#' Needs a Python 3.10 or later with the `venv` module (the first one found by
#' `reticulate::virtualenv_starter()`; the pins are tested with Python 3.11),
#' and a C++ compiler: the dependency Annoy is compiled from source. Installing
#' takes a minute or two and about 2 GB. pip's output goes to a log file; if
#' the install fails, the environment it created is removed again, and the
#' error names the likely cause and the log file.
#'
#' @param envname Name of (or path to) the environment to install into.
#' @param method `"virtualenv"`, `"conda"`, or `"auto"` (a virtual environment,
#'   except on Windows, where conda is used).
#' @param python_version Python version for a new environment, such as
#'   `"3.11"` or `">=3.10"`; `NULL` takes the newest Python 3.10 or later found.
#' @param gpu If `TRUE`, installs TensorFlow with GPU support (extra `gpu`)
#'   instead of the CPU-only build (extra `cpu`).
#' @param source Where the ivis core comes from. `NULL` (the default) installs
#'   the core carried by this R package. Otherwise a local checkout of the ivis
#'   repository (a folder holding `pyproject.toml`), a wheel or source archive,
#'   or a pip-installable URL. A checkout or archive must have the same version
#'   as this R package.
#' @param new_env If `TRUE`, an existing environment named `envname` is deleted
#'   and created afresh. Otherwise the environment is created only when it does
#'   not exist, and updated in place.
#' @param ... Further arguments for [reticulate::virtualenv_create()] or
#'   [reticulate::conda_install()].
#' @return Invisibly, `envname`.
#' @seealso [ivis_sitrep()] to check the result.
#' @examples
#' \dontrun{
#' install_ivis()
#' # a fresh environment with a given Python
#' install_ivis(python_version = "3.11", new_env = TRUE)
#' }
#' @export
install_ivis <- function(envname = "r-ivis", method = c("auto", "virtualenv", "conda"),
                         python_version = NULL, gpu = FALSE, source = NULL,
                         new_env = FALSE, ...) {
  method <- match.arg(method)
  if (method == "auto") method <- if (.Platform$OS.type == "windows") "conda" else "virtualenv"
  plan <- install_plan(gpu = gpu, source = source)
  staged <- NULL
  if (!is.null(plan$stage)) {
    # pip builds a folder in place (build/, *.egg-info): build a copy, never the package's own.
    staged <- stage_core(plan$stage)
    on.exit(unlink(staged, recursive = TRUE), add = TRUE)
    plan$packages <- sprintf("ivis[%s] @ %s", plan$extra, file_url(staged))
  }
  if (method == "virtualenv") {
    install_virtualenv(envname, plan, python_version, new_env, ...)
  } else {
    install_conda(envname, plan, python_version, new_env, ...)
  }
  message(sprintf(paste0(
    "\nThe ivis Python core %s is installed in the %s environment '%s'.\n",
    "Restart R (in RStudio: Session > Restart R) before using ivis; ",
    "then ivis::ivis_sitrep() shows what is in use."
  ), plan$version, method, envname))
  invisible(envname)
}

install_virtualenv <- function(envname, plan, python_version, new_env, ...) {
  path <- virtualenv_folder(envname)
  if (isTRUE(new_env) && file.exists(path)) {
    if (!file.exists(file.path(path, "pyvenv.cfg"))) {
      stop(sprintf(paste0(
        "'%s' is not a virtual environment (it has no pyvenv.cfg), so install_ivis() does ",
        "not delete it. Choose another envname, or remove it yourself."
      ), path), call. = FALSE)
    }
    message(sprintf("Removing the virtual environment '%s' (new_env = TRUE).", path))
    remove_env(path)
  }
  created <- FALSE
  if (!file.exists(path)) {
    starter <- find_starter(python_version)
    if (is.null(starter)) {
      stop(sprintf(paste0(
        "No Python %s with the 'venv' module and a shared libpython was found to create the ",
        "virtual environment '%s'. Install one (for example Python 3.11: on Debian or Ubuntu ",
        "`sudo apt-get install python3 python3-venv`; elsewhere from python.org), then run ",
        "install_ivis() again, or pass python_version (such as \"3.11\") to choose among ",
        "those installed."
      ), python_version %||% ">= 3.10", envname), call. = FALSE)
    }
    created <- TRUE
    made <- tryCatch(
      reticulate::virtualenv_create(path, python = starter, packages = NULL, ...),
      error = identity
    )
    if (inherits(made, "error")) {
      remove_env(path)
      stop(sprintf(paste0(
        "Creating the virtual environment '%s' with %s failed: %s\nNothing was left ",
        "behind; fix the cause and run install_ivis() again."
      ), envname, starter, conditionMessage(made)), call. = FALSE)
    }
  }
  python <- python_in(path)
  if (length(python) == 0L) {
    stop(sprintf(paste0(
      "'%s' exists but is not a virtual environment (it holds no bin/python). Choose ",
      "another envname, or remove that folder and run install_ivis() again."
    ), path), call. = FALSE)
  }
  log <- file.path(tempdir(), sprintf("install-ivis-%s.log", format(Sys.time(), "%Y%m%d-%H%M%S")))
  message(sprintf(paste0(
    "Installing the ivis Python core %s and its pinned dependencies into '%s' ",
    "(a minute or two; pip's output goes to %s) ..."
  ), plan$version, path, log))
  status <- pip_install_logged(python, plan, log)
  if (status != 0L) {
    output <- readLines(log, warn = FALSE)
    if (created) remove_env(path)
    stop(install_failure_message(output, log, envname, created, python), call. = FALSE)
  }
  installed <- installed_core_version(python)
  if (!identical(installed, plan$version)) {
    stop(sprintf(paste0(
      "pip finished, but the Python in '%s' imports ivis version %s instead of %s. ",
      "Run install_ivis(new_env = TRUE) to start from a fresh environment."
    ), path, installed %||% "none", plan$version), call. = FALSE)
  }
  invisible(path)
}

install_conda <- function(envname, plan, python_version, new_env, ...) {
  if (isTRUE(new_env) && reticulate::condaenv_exists(envname)) {
    message(sprintf("Removing the conda environment '%s' (new_env = TRUE).", envname))
    reticulate::conda_remove(envname)
  }
  created <- !reticulate::condaenv_exists(envname)
  done <- tryCatch(
    reticulate::conda_install(
      envname, packages = plan$packages, pip = TRUE,
      pip_options = c("--constraint", shQuote(plan$constraints)),
      python_version = python_version %||% "3.11", ...
    ),
    error = identity
  )
  if (inherits(done, "error")) {
    if (created && reticulate::condaenv_exists(envname)) reticulate::conda_remove(envname)
    stop(sprintf(paste0(
      "Installing the ivis Python core into the conda environment '%s' failed: %s\n%s",
      "The output above shows pip's reason. The usual causes: no C++ compiler for the ",
      "dependency Annoy (on Windows: the Microsoft C++ Build Tools), or a Python for which ",
      "the pinned TensorFlow has no build (use python_version = \"3.11\")."
    ), envname, conditionMessage(done),
    if (created) "The environment it created was removed. " else ""), call. = FALSE)
  }
  invisible(envname)
}

# The Python to create a virtual environment with: one satisfying `python_version`, or by
# default the Python the pins are tested with (3.11), else 3.12 or 3.10, else the newest
# 3.10 or later. NULL when there is none.
find_starter <- function(python_version = NULL) {
  wanted <- if (is.null(python_version)) c("3.11", "3.12", "3.10", ">=3.10") else python_version
  for (version in wanted) {
    starter <- reticulate::virtualenv_starter(version)
    if (!is.null(starter)) return(starter)
  }
  NULL
}

# Runs `python -m pip install` for `plan`, its output going to the file `log`; the exit status.
pip_install_logged <- function(python, plan, log) {
  args <- c("-m", "pip", "install", "--upgrade", "--no-user",
            "--constraint", shQuote(plan$constraints), shQuote(plan$packages))
  status <- run_python(python, args, stdout = log, stderr = log)
  if (is.null(status) || is.na(status)) 1L else as.integer(status)
}

# system2() for a Python executable. On Linux a Python built with a shared libpython outside
# the system's library folders (pyenv, python-build) finds it only through
# LD_LIBRARY_PATH: its <prefix>/lib is put first, as reticulate does when it runs pip.
run_python <- function(python, args, ...) {
  if (Sys.info()[["sysname"]] == "Linux") {
    lib <- file.path(dirname(dirname(c(python, normalizePath(python, mustWork = FALSE)))), "lib")
    lib <- unique(lib[dir.exists(lib)])
    if (length(lib)) {
      old <- Sys.getenv("LD_LIBRARY_PATH", unset = NA)
      Sys.setenv(LD_LIBRARY_PATH = paste(c(lib, if (!is.na(old)) old), collapse = ":"))
      on.exit(if (is.na(old)) Sys.unsetenv("LD_LIBRARY_PATH") else
        Sys.setenv(LD_LIBRARY_PATH = old), add = TRUE)
    }
  }
  suppressWarnings(system2(python, args, ...))
}

# The version of ivis that `python` imports, or NULL.
installed_core_version <- function(python) {
  out <- run_python(python, c("-c", shQuote("import ivis; print(ivis.__version__)")),
                    stdout = TRUE, stderr = FALSE)
  if (!is.null(attr(out, "status")) || length(out) == 0L) return(NULL)
  trimws(out[[length(out)]])
}

# The folder of the virtual environment `envname`: a name lives in
# reticulate::virtualenv_root(); anything with a slash is a path.
virtualenv_folder <- function(envname) {
  if (grepl("[/\\\\]", envname)) return(path.expand(envname))
  file.path(path.expand(reticulate::virtualenv_root()), envname)
}

remove_env <- function(path) {
  if (file.exists(path)) unlink(path, recursive = TRUE, force = TRUE)
}

# Sets RETICULATE_USE_MANAGED_VENV=no while `expr` runs (unless the user opted in), so that
# reticulate considers only the Pythons on the machine and never downloads one.
without_managed_python <- function(expr) {
  if (managed_python_wanted()) return(expr)
  old <- Sys.getenv("RETICULATE_USE_MANAGED_VENV", unset = NA)
  Sys.setenv(RETICULATE_USE_MANAGED_VENV = "no")
  on.exit(if (is.na(old)) Sys.unsetenv("RETICULATE_USE_MANAGED_VENV") else
    Sys.setenv(RETICULATE_USE_MANAGED_VENV = old), add = TRUE)
  expr
}

# TRUE when the user asked reticulate for its managed (downloaded) Python.
managed_python_wanted <- function() {
  identical(Sys.getenv("RETICULATE_PYTHON"), "managed") ||
    tolower(Sys.getenv("RETICULATE_USE_MANAGED_VENV")) %in% c("true", "1", "yes")
}

#' The likely cause of a failed pip install, from pip's output.
#' @noRd
install_failure_cause <- function(output) {
  text <- paste(output, collapse = "\n")
  has <- function(pattern) grepl(pattern, text, ignore.case = TRUE, perl = TRUE)
  if (has("annoy") && has(paste0(
    "(failed (building|to build).{0,40}annoy|annoy.{0,200}(error: command|compiler|",
    "Microsoft Visual C\\+\\+|g\\+\\+|gcc|clang))"
  ))) {
    return(paste0(
      "the dependency Annoy is compiled from source and no working C++ compiler was found. ",
      "Install one (Debian/Ubuntu: `sudo apt-get install g++ python3-dev`; Fedora: ",
      "`sudo dnf install gcc-c++ python3-devel`; macOS: `xcode-select --install`; Windows: ",
      "the Microsoft C++ Build Tools), then run install_ivis() again."
    ))
  }
  if (has("(No matching distribution found for|Could not find a version that satisfies the requirement) (tensorflow|keras|numpy|scipy|h5py)")) {
    return(paste0(
      "the pinned TensorFlow/Keras/NumPy have no build for this environment's Python ",
      "(or platform). Create the environment with a Python they support, such as 3.11: ",
      "install_ivis(python_version = \"3.11\", new_env = TRUE)."
    ))
  }
  if (has("requires a different Python|Requires-Python")) {
    return(paste0(
      "this environment's Python is too old: the ivis core needs Python 3.10 or later. ",
      "Run install_ivis(python_version = \"3.11\", new_env = TRUE)."
    ))
  }
  if (has("(Failed to establish a new connection|Temporary failure in name resolution|Network is unreachable|Could not fetch URL|ProxyError|SSLError|Read timed out)")) {
    return(paste0(
      "pip could not reach the Python package index. Check the network or the proxy ",
      "(HTTPS_PROXY) and pip's index settings, then run install_ivis() again."
    ))
  }
  if (has("No space left on device")) {
    return("the disk is full: the environment needs about 2 GB. Free some space and retry.")
  }
  "see pip's output below."
}

install_failure_message <- function(output, log, envname, created, python) {
  tail_lines <- utils::tail(output[nzchar(trimws(output))], 15L)
  paste0(
    "Installing the ivis Python core into '", envname, "' (", python, ") failed. ",
    "Likely cause: ", install_failure_cause(output), "\n",
    if (created) {
      "The environment it created was removed again. "
    } else {
      "The environment existed before and was kept; install_ivis(new_env = TRUE) starts afresh. "
    },
    "pip's full output is in ", log, "; its last lines:\n",
    paste0("  ", tail_lines, collapse = "\n")
  )
}

#' What install_ivis() installs, without installing anything.
#'
#' @return A list: `version` (of the core), `extra` (`"cpu"` or `"gpu"`),
#'   `packages` (the pip requirement), `constraints` (path of the pip
#'   constraints file with the pins) and `stage` (a local folder that is copied
#'   before pip builds it, else `NULL`).
#' @noRd
install_plan <- function(gpu = FALSE, source = NULL) {
  version <- as.character(utils::packageVersion("ivis"))
  extra <- if (isTRUE(gpu)) "gpu" else "cpu"
  constraints <- system.file("python", "constraints.txt", package = "ivis", mustWork = TRUE)
  stage <- NULL

  if (is.null(source)) {
    stage <- bundled_core()
    requirement <- sprintf("ivis[%s] @ %s", extra, file_url(stage))
  } else {
    if (!is.character(source) || length(source) != 1L || is.na(source) || !nzchar(source)) {
      stop("`source` must be NULL or one path or URL.", call. = FALSE)
    }
    local <- path.expand(source)
    if (dir.exists(local)) {
      local <- normalizePath(local, winslash = "/")
      found <- checkout_version(local)
      if (is.null(found)) {
        stop(sprintf(paste0(
          "`source` '%s' is not a checkout of the ivis repository: it has no ",
          "pyproject.toml and python/ivis/_version.py."
        ), local), call. = FALSE)
      }
      check_source_version(found, version, local)
      stage <- local
      requirement <- sprintf("ivis[%s] @ %s", extra, file_url(local))
    } else if (file.exists(local)) {
      local <- normalizePath(local, winslash = "/")
      found <- regmatches(basename(local),
                          regexpr("(?<=^ivis-)[0-9][^-]*(?=(-|\\.tar|\\.zip))", basename(local),
                                  perl = TRUE))
      if (length(found) != 1L) {
        stop(sprintf(paste0(
          "`source` '%s' is not an ivis wheel or source archive (expected a name like ",
          "ivis-%s-py3-none-any.whl or ivis-%s.tar.gz)."
        ), local, version, version), call. = FALSE)
      }
      check_source_version(found, version, local)
      requirement <- sprintf("ivis[%s] @ %s", extra, file_url(local))
    } else if (grepl("^[a-z+]+://", source)) {
      requirement <- sprintf("ivis[%s] @ %s", extra, source)
    } else {
      stop(sprintf("`source` '%s' does not exist (give a folder, a file or a URL).", source),
           call. = FALSE)
    }
  }
  list(version = version, extra = extra, packages = requirement, constraints = constraints,
       stage = stage)
}

# The folder of the Python core carried by the installed package (python/core: the
# repository's pyproject.toml, README.md and python/ivis, copied in when the package is
# built or installed), checked to be this package's version.
bundled_core <- function() {
  core <- system.file("python", "core", package = "ivis")
  found <- if (nzchar(core)) checkout_version(core) else NULL
  if (is.null(found)) {
    stop(paste0(
      "This installation of the ivis R package does not carry its Python core ",
      "(python/core is missing or incomplete). That happens when the package was installed ",
      "from a copy that lost the links of R-package/inst/python/core (for example a git ",
      "checkout without symbolic links, as on Windows by default). Reinstall it from a ",
      "checkout with links or from a built package (R CMD build R-package), or pass ",
      "install_ivis(source = <checkout of the ivis repository>)."
    ), call. = FALSE)
  }
  check_source_version(found, as.character(utils::packageVersion("ivis")), core)
  normalizePath(core, winslash = "/")
}

# Copies what pip needs to build the core in `dir` (pyproject.toml, README.md, python/,
# without caches or earlier build output) to a new temporary folder; returns its path.
stage_core <- function(dir) {
  to <- tempfile("ivis-core-")
  dir.create(to)
  for (name in c("pyproject.toml", "README.md", "LICENSE")) {
    if (file.exists(file.path(dir, name))) file.copy(file.path(dir, name), to)
  }
  files <- list.files(file.path(dir, "python"), recursive = TRUE, all.files = TRUE)
  files <- files[!grepl("(^|/)(__pycache__|[^/]*\\.egg-info|build)(/|$)|\\.pyc$", files)]
  for (dirname in unique(dirname(files))) {
    dir.create(file.path(to, "python", dirname), recursive = TRUE, showWarnings = FALSE)
  }
  ok <- file.copy(file.path(dir, "python", files), file.path(to, "python", files))
  if (!all(ok)) stop(sprintf("Could not copy the ivis core from '%s' to '%s'.", dir, to), call. = FALSE)
  to
}

# The version in a checkout's python/ivis/_version.py, or NULL if it is not a checkout.
checkout_version <- function(dir) {
  file <- file.path(dir, "python", "ivis", "_version.py")
  if (!file.exists(file.path(dir, "pyproject.toml")) || !file.exists(file)) return(NULL)
  lines <- readLines(file, warn = FALSE)
  hit <- regmatches(lines, regexpr("(?<=__version__ = [\"'])[^\"']+", lines, perl = TRUE))
  if (length(hit)) hit[[1L]] else NULL
}

check_source_version <- function(found, wanted, where) {
  if (!identical(found, wanted)) {
    stop(sprintf(paste0(
      "`source` '%s' holds ivis %s, but this R package is %s: use the matching version ",
      "(check out tag v%s), or install the R package from the same checkout."
    ), where, found, wanted, wanted), call. = FALSE)
  }
}

file_url <- function(path) {
  path <- normalizePath(path, winslash = "/", mustWork = TRUE)
  if (!startsWith(path, "/")) path <- paste0("/", path)
  paste0("file://", utils::URLencode(path))
}
