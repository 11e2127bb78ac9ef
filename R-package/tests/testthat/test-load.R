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
