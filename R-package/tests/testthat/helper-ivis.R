# Gate for tests that need the ivis Python core. They skip when it is missing, unless the
# environment variable IVIS_REQUIRE_PYTHON is 1 (as in CI): then they fail.
skip_if_no_ivis <- function() {
  if (is.null(.ivis_test$available)) .ivis_test$available <- ivis::ivis_available()
  if (isTRUE(.ivis_test$available)) return(invisible(TRUE))
  reason <- "the ivis Python core is not available"
  if (identical(Sys.getenv("IVIS_REQUIRE_PYTHON"), "1")) {
    problem <- tryCatch(ivis:::core_status()$problem, error = conditionMessage)
    stop(sprintf("IVIS_REQUIRE_PYTHON=1 but %s: %s", reason, problem), call. = FALSE)
  }
  testthat::skip(paste0(reason, " (see ivis::ivis_sitrep())"))
}
.ivis_test <- new.env()

# Small, fast settings for tests.
small_ivis <- function(...) {
  args <- utils::modifyList(
    list(k = 10, epochs = 2, batch_size = 32, n_trees = 10, verbose = 0, random_state = 7),
    list(...)
  )
  do.call(ivis::ivis, args)
}

iris_X <- function() {
  X <- scale(data.matrix(iris[, 1:4]))
  attr(X, "scaled:center") <- NULL
  attr(X, "scaled:scale") <- NULL
  rownames(X) <- sprintf("flower%03d", seq_len(nrow(X)))
  X
}

# 1-based indices of each row's k nearest other rows (Euclidean).
exact_neighbours <- function(X, k) {
  d <- as.matrix(stats::dist(X))
  diag(d) <- Inf
  t(apply(d, 1L, function(row) order(row)[seq_len(k)]))
}

# Runs R code in a fresh Rscript with this session's library paths; returns its output lines.
run_rscript <- function(code, env = character()) {
  rscript <- file.path(R.home("bin"), "Rscript")
  old <- Sys.getenv(c("R_LIBS", names(env)), unset = NA, names = TRUE)
  on.exit({
    for (name in names(old)) {
      if (is.na(old[[name]])) Sys.unsetenv(name) else do.call(Sys.setenv, as.list(old[name]))
    }
  }, add = TRUE)
  Sys.setenv(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  for (name in names(env)) {
    if (is.na(env[[name]])) Sys.unsetenv(name) else do.call(Sys.setenv, as.list(env[name]))
  }
  file <- tempfile(fileext = ".R")
  writeLines(code, file)
  out <- suppressWarnings(system2(rscript, c("--vanilla", shQuote(file)), stdout = TRUE, stderr = TRUE))
  structure(out, status = attr(out, "status") %||% 0L)
}

`%||%` <- function(x, y) if (is.null(x)) y else x

# Models trained once per test run and shared by tests that only read them.
fitted_model <- function(supervised = FALSE) {
  key <- if (supervised) "supervised" else "unsupervised"
  if (is.null(.ivis_test[[key]])) {
    X <- iris_X()
    .ivis_test[[key]] <- if (supervised) small_ivis()$fit(X, iris$Species) else small_ivis()$fit(X)
  }
  .ivis_test[[key]]
}

# A Python other than the one the tests use (the system's), which lacks the ivis core.
other_python <- function() {
  candidates <- c("/usr/bin/python3", unname(Sys.which("python3")))
  candidates <- candidates[nzchar(candidates) & file.exists(candidates)]
  testthat::skip_if(length(candidates) == 0L, "no second Python on this machine")
  candidates[[1L]]
}
