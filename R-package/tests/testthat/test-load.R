# Loading the package must never start Python.

test_that("library(ivis) does not start Python", {
  out <- run_rscript(c(
    "library(ivis)",
    "stopifnot(is.function(ivis::ivis))",
    "cat('python started:', reticulate::py_available(initialize = FALSE), '\\n')"
  ))
  expect_identical(attr(out, "status"), 0L, info = paste(out, collapse = "\n"))
  expect_true(any(grepl("python started: FALSE", out, fixed = TRUE)), info = paste(out, collapse = "\n"))
})

test_that("IVIS_PYTHON selects the interpreter, and a wrong one is reported", {
  skip_if_no_ivis()
  python <- reticulate::py_exe()
  out <- run_rscript(
    c("library(ivis)", "stopifnot(ivis_available())", "cat('python:', reticulate::py_exe(), '\\n')"),
    env = c(RETICULATE_PYTHON = NA, IVIS_PYTHON = python)
  )
  expect_true(any(grepl(paste("python:", python), out, fixed = TRUE)), info = paste(out, collapse = "\n"))
  out <- run_rscript(
    c("library(ivis)", "cat('available:', ivis_available(), '\\n')", "ivis(k = 5)"),
    env = c(RETICULATE_PYTHON = NA, IVIS_PYTHON = "/nonexistent/python")
  )
  expect_true(any(grepl("available: FALSE", out, fixed = TRUE)), info = paste(out, collapse = "\n"))
  expect_true(any(grepl("IVIS_PYTHON is set to '/nonexistent/python', which does not exist", out,
                        fixed = TRUE)), info = paste(out, collapse = "\n"))
})

test_that("ivis_sitrep() reports the Python and the core", {
  skip_if_no_ivis()
  expect_output(status <- ivis::ivis_sitrep(), "ivis is ready to use")
  expect_true(status$ok)
  expect_identical(status$ivis_version, as.character(utils::packageVersion("ivis")))
  expect_identical(status$python, reticulate::py_config()$python)
  expect_match(status$keras_backend, ".+")
})

test_that("a first session shows none of TensorFlow's start-up lines", {
  skip_if_no_ivis()
  out <- run_rscript(c(
    "library(ivis)",
    "invisible(ivis_sitrep())",
    "model <- ivis(k = 5, epochs = 1, batch_size = 16, verbose = 0, random_state = 0)",
    "xy <- model$fit_transform(as.matrix(iris[, 1:4]))",
    "cat('rows:', nrow(xy), '\\n')"
  ), env = c(RETICULATE_PYTHON = reticulate::py_exe(), TF_CPP_MIN_LOG_LEVEL = NA))
  text <- paste(out, collapse = "\n")
  expect_identical(attr(out, "status"), 0L, info = text)
  expect_match(text, "rows: 150", fixed = TRUE)
  expect_false(grepl("absl::InitializeLog|oneDNN custom operations", text), info = text)
})

test_that("without the core, the package's own message comes and no Python is downloaded", {
  root <- tempfile("venv-root-")
  cache <- tempfile("r-cache-")
  dir.create(root)
  on.exit(unlink(c(root, cache), recursive = TRUE), add = TRUE)
  out <- run_rscript(c(
    "library(ivis)",
    "cat('available:', ivis_available(), '\\n')",
    "status <- ivis_sitrep()",
    "cat('error:', tryCatch({ivis(k = 5); 'none'}, error = conditionMessage), '\\n')",
    "cat('python started:', reticulate::py_available(initialize = FALSE), '\\n')",
    "cat('cached files:', length(list.files(Sys.getenv('R_USER_CACHE_DIR'), recursive = TRUE,",
    "    all.files = TRUE)), '\\n')"
  ), env = c(
    RETICULATE_PYTHON = NA, IVIS_PYTHON = NA, RETICULATE_PYTHON_ENV = NA, VIRTUAL_ENV = NA,
    RETICULATE_USE_MANAGED_VENV = NA, PYTHONPATH = NA, RETICULATE_VIRTUALENV_ROOT = root,
    WORKON_HOME = root, R_USER_CACHE_DIR = cache,
    # any download attempt fails at once instead of reaching the network
    http_proxy = "http://127.0.0.1:9", https_proxy = "http://127.0.0.1:9",
    HTTP_PROXY = "http://127.0.0.1:9", HTTPS_PROXY = "http://127.0.0.1:9"
  ))
  text <- paste(out, collapse = "\n")
  expect_identical(attr(out, "status"), 0L, info = text)
  expect_match(text, "available: FALSE", fixed = TRUE)
  expect_match(text, "error: The ivis Python core is not installed", fixed = TRUE)
  expect_match(text, "Run ivis::install_ivis() once, then restart R", fixed = TRUE)
  expect_match(text, root, fixed = TRUE)
  expect_match(text, "python started: FALSE", fixed = TRUE)
  expect_match(text, "cached files: 0", fixed = TRUE)
  expect_false(grepl("uv|Downloading|Installation of Python not found", text), info = text)
})

test_that("a Python started before ivis is diagnosed as such, not as a missing core", {
  skip_if_no_ivis()
  python <- reticulate::py_exe()
  root <- tempfile("venv-root-")
  dir.create(file.path(root, "r-ivis", "bin"), recursive = TRUE)
  on.exit(unlink(root, recursive = TRUE), add = TRUE)
  # the 'r-ivis' environment ivis would use (its Python is never run here)
  file.symlink(python, file.path(root, "r-ivis", "bin", "python"))
  other <- other_python()
  out <- run_rscript(c(
    sprintf("reticulate::use_python('%s', required = TRUE)", other),
    "invisible(reticulate::py_config())",
    "library(ivis)",
    "cat(tryCatch({ivis(k = 5); 'no error'}, error = conditionMessage), '\\n')"
  ), env = c(RETICULATE_PYTHON = NA, IVIS_PYTHON = NA, PYTHONPATH = NA,
             RETICULATE_VIRTUALENV_ROOT = root))
  text <- paste(out, collapse = "\n")
  expect_match(text, "R already runs the Python at", fixed = TRUE)
  expect_match(text, "Restart R and use ivis before anything else starts Python", fixed = TRUE)
  expect_match(text, file.path(root, "r-ivis"), fixed = TRUE)
})

test_that("a folder named 'ivis' in the working directory is named as what Python imported", {
  skip_if_no_ivis()
  other <- other_python()
  # -I: without PYTHONPATH and the working directory, as a user's own Python
  probe <- suppressWarnings(system2(other, c("-I", "-c", shQuote("import ivis")), stderr = TRUE,
                                    stdout = TRUE))
  skip_if(is.null(attr(probe, "status")), "the python3 on the PATH has an ivis module")
  dir <- tempfile("work-")
  dir.create(file.path(dir, "ivis"), recursive = TRUE)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  out <- run_rscript(c(
    sprintf("setwd('%s')", dir),
    "library(ivis)",
    "cat(ivis_sitrep()$problem, '\\n')"
  ), env = c(RETICULATE_PYTHON = other, IVIS_PYTHON = NA, PYTHONPATH = NA))
  text <- paste(out, collapse = "\n")
  expect_match(text, "this Python has no ivis core", fixed = TRUE)
  expect_match(text, "namespace package", fixed = TRUE)
  expect_false(grepl("2.x", text, fixed = TRUE))
})
