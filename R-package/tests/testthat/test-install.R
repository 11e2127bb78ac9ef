# What install_ivis() installs (nothing is installed here).

fake_checkout <- function(version) {
  dir <- tempfile("ivis-checkout-")
  dir.create(file.path(dir, "python", "ivis"), recursive = TRUE)
  writeLines("[project]\nname = \"ivis\"", file.path(dir, "pyproject.toml"))
  writeLines(sprintf('__version__ = "%s"', version), file.path(dir, "python", "ivis", "_version.py"))
  dir
}

test_that("by default the core carried by the package is installed, never a git host or PyPI", {
  version <- as.character(utils::packageVersion("ivis"))
  plan <- ivis:::install_plan()
  expect_identical(plan$version, version)
  core <- system.file("python", "core", package = "ivis")
  expect_identical(plan$stage, normalizePath(core))
  expect_identical(plan$packages, paste0("ivis[cpu] @ file://", normalizePath(core)))
  expect_false(grepl("git|https?://|pypi", plan$packages))
  expect_match(ivis:::install_plan(gpu = TRUE)$packages, "^ivis\\[gpu\\] @ file://")
  # the carried core is complete and of this version
  expect_identical(ivis:::checkout_version(core), version)
  expect_true(file.exists(file.path(core, "python", "ivis", "estimator.py")))
})

test_that("the core is built from a copy without caches or build output", {
  src <- fake_checkout(as.character(utils::packageVersion("ivis")))
  on.exit(unlink(src, recursive = TRUE), add = TRUE)
  dir.create(file.path(src, "python", "ivis", "__pycache__"))
  writeLines("x", file.path(src, "python", "ivis", "__pycache__", "a.pyc"))
  dir.create(file.path(src, "python", "ivis.egg-info"))
  writeLines("x", file.path(src, "python", "ivis.egg-info", "PKG-INFO"))
  dir.create(file.path(src, ".venv"))
  staged <- ivis:::stage_core(src)
  on.exit(unlink(staged, recursive = TRUE), add = TRUE)
  expect_setequal(list.files(staged, recursive = TRUE, all.files = TRUE),
                  c("pyproject.toml", "python/ivis/_version.py"))
})

test_that("a failed pip install names the likely cause", {
  cause <- ivis:::install_failure_cause
  expect_match(cause(c(
    "Building wheel for annoy (pyproject.toml): started",
    "error: command 'g++' failed: No such file or directory",
    "ERROR: Failed building wheel for annoy"
  )), "C\\+\\+ compiler")
  expect_match(cause(c(
    "ERROR: Could not find a version that satisfies the requirement tensorflow-cpu==2.21.0",
    "ERROR: No matching distribution found for tensorflow-cpu==2.21.0"
  )), "python_version = \"3.11\"")
  expect_match(cause("ERROR: Package 'ivis' requires a different Python: 3.9.18 not in '>=3.10'"),
               "3.10 or later")
  expect_match(cause("Could not fetch URL https://pypi.org/simple/keras/: connection error"),
               "could not reach the Python package index")
  message <- ivis:::install_failure_message(c("a", "ERROR: Failed building wheel for annoy",
                                              "gcc: not found"),
                                            "/tmp/x.log", "r-ivis", TRUE, "/env/bin/python")
  expect_match(message, "removed again")
  expect_match(message, "/tmp/x.log", fixed = TRUE)
  expect_match(message, "gcc: not found", fixed = TRUE)
})

test_that("with no usable Python, install_ivis() stops before creating anything", {
  root <- tempfile("venv-root-")
  dir.create(root)
  on.exit(unlink(root, recursive = TRUE), add = TRUE)
  out <- run_rscript(
    c("library(ivis)", "install_ivis(python_version = '2.1')"),
    env = c(RETICULATE_VIRTUALENV_ROOT = root, RETICULATE_PYTHON = NA, IVIS_PYTHON = NA)
  )
  expect_false(identical(attr(out, "status"), 0L))
  expect_true(any(grepl("No Python 2.1 with the 'venv' module", out, fixed = TRUE)),
              info = paste(out, collapse = "\n"))
  expect_length(list.files(root, all.files = TRUE, no.. = TRUE), 0L)
})

test_that("dependency pins come from one constraints file", {
  plan <- ivis:::install_plan()
  expect_true(file.exists(plan$constraints))
  lines <- trimws(readLines(plan$constraints))
  pins <- lines[nzchar(lines) & !startsWith(lines, "#")]
  expect_true(all(grepl("^[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*$", pins)), info = paste(pins, collapse = "\n"))
  pinned <- sub("==.*", "", pins)
  expect_true(all(c("tensorflow-cpu", "tensorflow", "keras", "numpy", "annoy") %in% pinned))
  expect_false("ivis" %in% pinned)
})

test_that("a local checkout must have this package's version", {
  version <- as.character(utils::packageVersion("ivis"))
  good <- fake_checkout(version)
  on.exit(unlink(good, recursive = TRUE), add = TRUE)
  plan <- ivis:::install_plan(source = good)
  expect_identical(plan$packages, paste0("ivis[cpu] @ file://", normalizePath(good)))
  expect_identical(plan$stage, normalizePath(good))

  bad <- fake_checkout("2.0.11")
  on.exit(unlink(bad, recursive = TRUE), add = TRUE)
  expect_error(ivis:::install_plan(source = bad),
               sprintf("holds ivis 2.0.11, but this R package is %s", version), fixed = TRUE)
  expect_error(ivis:::install_plan(source = tempdir()), "not a checkout of the ivis repository")
  expect_error(ivis:::install_plan(source = "/nonexistent/ivis"), "does not exist")
})

test_that("archives are checked by name; URLs are taken as given", {
  version <- as.character(utils::packageVersion("ivis"))
  wheel <- file.path(tempdir(), sprintf("ivis-%s-py3-none-any.whl", version))
  old <- file.path(tempdir(), "ivis-2.0.11.tar.gz")
  file.create(wheel, old)
  on.exit(unlink(c(wheel, old)), add = TRUE)
  expect_match(ivis:::install_plan(source = wheel)$packages, "^ivis\\[cpu\\] @ file:///.*\\.whl$")
  expect_error(ivis:::install_plan(source = old), "holds ivis 2.0.11")
  expect_identical(ivis:::install_plan(source = "https://example.org/ivis.tar.gz")$packages,
                   "ivis[cpu] @ https://example.org/ivis.tar.gz")
})

test_that("install_ivis() has the documented arguments", {
  expect_identical(names(formals(ivis::install_ivis)), c(
    "envname", "method", "python_version", "gpu", "source", "new_env", "..."
  ))
  expect_identical(formals(ivis::install_ivis)$envname, "r-ivis")
  expect_false(formals(ivis::install_ivis)$new_env)
})

test_that("a folder that is not a virtual environment is never deleted or used", {
  root <- tempfile("venv-root-")
  dir.create(file.path(root, "r-ivis"), recursive = TRUE)
  writeLines("keep me", file.path(root, "r-ivis", "notes.txt"))
  on.exit(unlink(root, recursive = TRUE), add = TRUE)
  for (new_env in c(TRUE, FALSE)) {
    out <- run_rscript(
      c("library(ivis)", sprintf("install_ivis(new_env = %s)", new_env)),
      env = c(RETICULATE_VIRTUALENV_ROOT = root, RETICULATE_PYTHON = NA, IVIS_PYTHON = NA)
    )
    expect_false(identical(attr(out, "status"), 0L))
    expect_true(any(grepl("is not a virtual environment", out, fixed = TRUE)),
                info = paste(out, collapse = "\n"))
    expect_identical(readLines(file.path(root, "r-ivis", "notes.txt")), "keep me")
  }
})

test_that("a failed install removes the environment it created and says why", {
  skip_if_no_ivis() # runs where a Python is installed and the package index is reachable
  root <- tempfile("venv-root-")
  dir.create(root)
  on.exit(unlink(root, recursive = TRUE), add = TRUE)
  # a checkout of the right version whose Python package cannot be built
  broken <- fake_checkout(as.character(utils::packageVersion("ivis")))
  on.exit(unlink(broken, recursive = TRUE), add = TRUE)
  writeLines(c("[build-system]", "requires = []", "build-backend = \"no_such_backend\""),
             file.path(broken, "pyproject.toml"))
  out <- run_rscript(
    c("library(ivis)", sprintf("install_ivis(source = '%s')", broken)),
    env = c(RETICULATE_VIRTUALENV_ROOT = root, RETICULATE_PYTHON = NA, IVIS_PYTHON = NA,
            PYTHONPATH = NA)
  )
  text <- paste(out, collapse = "\n")
  expect_false(identical(attr(out, "status"), 0L))
  expect_match(text, "Installing the ivis Python core into 'r-ivis'", fixed = TRUE)
  expect_match(text, "The environment it created was removed again", fixed = TRUE)
  expect_match(text, "pip's full output is in", fixed = TRUE)
  expect_false(file.exists(file.path(root, "r-ivis")))
})
