#' Install the ivis Python core
#'
#' Installs the ivis Python core whose version matches this R package, with
#' pinned versions of its dependencies (TensorFlow, Keras, NumPy, ...), into a
#' Python virtual environment or conda environment. The pins live in one file,
#' `system.file("python", "constraints.txt", package = "ivis")`; a local
#' checkout given as `source` that has its own `python/constraints.txt` uses
#' that one instead. The unrelated PyPI release named `ivis` (2.x) is never
#' installed.
#'
#' Restart R after installing. By default the environment `"r-ivis"` is
#' created; it is found automatically the next time ivis needs Python (unless
#' `RETICULATE_PYTHON` or `IVIS_PYTHON` points elsewhere).
#'
#' @param envname Name of (or path to) the environment to install into.
#' @param method `"virtualenv"`, `"conda"`, or `"auto"` (a virtual environment,
#'   except on Windows, where conda is used).
#' @param python_version Python version for a new environment, such as
#'   `"3.11"`; `NULL` uses the one 'reticulate' finds. The pinned versions are
#'   tested with Python 3.11.
#' @param gpu If `TRUE`, installs TensorFlow with GPU support (extra `gpu`)
#'   instead of the CPU-only build (extra `cpu`).
#' @param source Where the ivis core comes from. `NULL` (the default) takes the
#'   release tagged `v<version>` from the ivis git repository. Otherwise a local
#'   checkout of the ivis repository (a folder holding `pyproject.toml`), a
#'   wheel or source archive, or a pip-installable URL. A checkout or archive
#'   must have the same version as this R package.
#' @param new_env If `TRUE`, an existing environment named `envname` is deleted
#'   and created afresh. Otherwise the environment is created only when it does
#'   not exist, and updated in place.
#' @param ... Further arguments for [reticulate::virtualenv_install()] or
#'   [reticulate::conda_install()].
#' @return Invisibly, `envname`.
#' @seealso [ivis_sitrep()] to check the result.
#' @examples
#' \dontrun{
#' install_ivis()
#' # from a local checkout of the ivis repository, in a fresh environment
#' install_ivis(source = "~/src/ivis", new_env = TRUE)
#' }
#' @export
install_ivis <- function(envname = "r-ivis", method = c("auto", "virtualenv", "conda"),
                         python_version = NULL, gpu = FALSE, source = NULL,
                         new_env = FALSE, ...) {
  method <- match.arg(method)
  if (method == "auto") method <- if (.Platform$OS.type == "windows") "conda" else "virtualenv"
  plan <- install_plan(gpu = gpu, source = source)
  pip_options <- c("--constraint", shQuote(plan$constraints))

  if (method == "virtualenv") {
    if (isTRUE(new_env) && reticulate::virtualenv_exists(envname)) {
      message(sprintf("Removing the virtual environment '%s' (new_env = TRUE).", envname))
      reticulate::virtualenv_remove(envname, confirm = FALSE)
    }
    reticulate::virtualenv_install(
      envname, packages = plan$packages, pip_options = pip_options,
      python_version = python_version, ...
    )
  } else {
    if (isTRUE(new_env) && reticulate::condaenv_exists(envname)) {
      message(sprintf("Removing the conda environment '%s' (new_env = TRUE).", envname))
      reticulate::conda_remove(envname)
    }
    reticulate::conda_install(
      envname, packages = plan$packages, pip = TRUE, pip_options = pip_options,
      python_version = python_version %||% "3.11", ...
    )
  }
  message(sprintf(paste0(
    "\nThe ivis Python core %s is installed in the %s environment '%s'.\n",
    "Restart R (in RStudio: Session > Restart R) before using ivis; ",
    "then ivis::ivis_sitrep() shows what is in use."
  ), plan$version, method, envname))
  invisible(envname)
}

# Git repository of the ivis project; releases are tagged v<version>.
ivis_git_url <- "https://github.com/beringresearch/ivis"

#' What install_ivis() installs, without installing anything.
#'
#' @return A list: `version` (of the core), `packages` (pip requirement
#'   strings), `constraints` (path of the pip constraints file with the pins).
#' @noRd
install_plan <- function(gpu = FALSE, source = NULL) {
  version <- as.character(utils::packageVersion("ivis"))
  extra <- if (isTRUE(gpu)) "gpu" else "cpu"
  constraints <- system.file("python", "constraints.txt", package = "ivis", mustWork = TRUE)

  if (is.null(source)) {
    requirement <- sprintf("ivis[%s] @ git+%s@v%s", extra, ivis_git_url, version)
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
      own <- file.path(local, "python", "constraints.txt")
      if (file.exists(own)) constraints <- own
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
  list(version = version, packages = requirement, constraints = constraints)
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
