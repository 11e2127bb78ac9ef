# What install_ivis() installs (nothing is installed here).

fake_checkout <- function(version) {
  dir <- tempfile("ivis-checkout-")
  dir.create(file.path(dir, "python", "ivis"), recursive = TRUE)
  writeLines("[project]\nname = \"ivis\"", file.path(dir, "pyproject.toml"))
  writeLines(sprintf('__version__ = "%s"', version), file.path(dir, "python", "ivis", "_version.py"))
  dir
}

test_that("by default the core tagged with this package's version is installed", {
  version <- as.character(utils::packageVersion("ivis"))
  plan <- ivis:::install_plan()
  expect_identical(plan$version, version)
  expect_identical(plan$packages, sprintf(
    "ivis[cpu] @ git+https://github.com/beringresearch/ivis@v%s", version
  ))
  expect_match(ivis:::install_plan(gpu = TRUE)$packages, "^ivis\\[gpu\\] @ git\\+")
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
  writeLines("numpy==1.0", file.path(good, "python", "constraints.txt"))
  expect_identical(ivis:::install_plan(source = good)$constraints,
                   file.path(normalizePath(good), "python", "constraints.txt"))

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
