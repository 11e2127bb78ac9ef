# Recognising the Python core (no Python needed).

test_that("only a core of this package's major version is accepted", {
  major <- utils::packageVersion("ivis")[[1L, 1L]]
  expect_null(ivis:::core_version_problem(as.character(utils::packageVersion("ivis"))))
  expect_null(ivis:::core_version_problem(sprintf("%d.99.1", major)))
  expect_match(ivis:::core_version_problem(NULL, "/some/site-packages/ivis"),
               "at /some/site-packages/ivis has no __version__.*unrelated 'ivis' 2.x release")
  expect_match(ivis:::core_version_problem("2.0.11"),
               sprintf("is version 2.0.11, but this R package .* needs the %d.x core", major))
  expect_match(ivis:::core_version_problem("not a version"), "is version not a version")
})

test_that("the message for a missing core names the ways to fix it", {
  message <- ivis:::core_missing_message(
    "ModuleNotFoundError: No module named 'ivis'\nRun `reticulate::py_last_error()` for details."
  )
  expect_match(message, "No module named 'ivis'", fixed = TRUE)
  expect_false(grepl("py_last_error", message, fixed = TRUE))
  expect_match(message, "install_ivis()", fixed = TRUE)
  expect_match(message, "IVIS_PYTHON", fixed = TRUE)
  expect_match(message, "RETICULATE_PYTHON", fixed = TRUE)
})

test_that("IVIS_PYTHON naming a folder without a Python is an error that says so", {
  out <- run_rscript(
    c("library(ivis)", "ivis(k = 5)"),
    env = c(RETICULATE_PYTHON = NA, IVIS_PYTHON = tempdir(), PYTHONPATH = NA)
  )
  expect_false(identical(attr(out, "status"), 0L))
  expect_true(any(grepl("holds no Python executable", out, fixed = TRUE)), info = paste(out, collapse = "\n"))
})
