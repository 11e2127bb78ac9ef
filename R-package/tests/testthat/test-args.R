# Argument marshalling: no Python needed.

test_that("capture_args() returns only the supplied arguments, in formals order", {
  f <- function(a = 1, b = 2, c = NULL) ivis:::capture_args(match.call(), environment())
  expect_identical(f(), setNames(list(), character()))
  expect_identical(f(c = 3, a = 5), list(a = 5, c = 3))
  expect_identical(f(9), list(a = 9))
  expect_identical(f(c = NULL), list(c = NULL))
  x <- 4
  expect_identical(f(b = x + 1), list(b = 5))
})

test_that("whole numbers become integers for integer parameters only", {
  args <- ivis:::prepare_args(list(
    k = 15, epochs = 1e3, embedding_dims = 3L, verbose = TRUE, random_state = 42,
    search_k = -1, supervision_weight = 1, distance = "pn", precompute = FALSE
  ))
  expect_identical(args$k, 15L)
  expect_identical(args$epochs, 1000L)
  expect_identical(args$embedding_dims, 3L)
  expect_identical(args$verbose, 1L)
  expect_identical(args$random_state, 42L)
  expect_identical(args$search_k, -1L)
  expect_identical(args$supervision_weight, 1) # a float parameter stays double
  expect_identical(args$distance, "pn")
  expect_identical(args$precompute, FALSE)
})

test_that("non-whole values reach Python unchanged so that it reports them", {
  args <- ivis:::prepare_args(list(k = 2.5, batch_size = "64", epochs = c(1, 2)))
  expect_identical(args$k, 2.5)
  expect_identical(args$batch_size, "64")
  expect_identical(args$epochs, c(1, 2))
})

test_that("NA for an integer parameter is an R error naming it", {
  expect_error(ivis:::prepare_args(list(k = NA)), "`k` is NA")
  expect_error(ivis:::prepare_args(list(epochs = NA_real_)), "`epochs` is NA")
})

test_that("whole numbers beyond R's integer range are marked for Python ints", {
  args <- ivis:::prepare_args(list(random_state = 2^32 - 1))
  expect_true(isTRUE(attr(args$random_state, "ivis_whole")))
})

test_that("ivis() has the documented arguments in the documented order", {
  # The documented arguments, with early_stopping (ours) after
  # n_epochs_without_progress, neighbour_search (ours) after search_k,
  # negative_sampling (ours) after precompute and validation_fraction,
  # learning_rate and weight_decay (ours) after supervision_weight.
  expect_identical(names(formals(ivis::ivis)), c(
    "embedding_dims", "k", "distance", "batch_size", "epochs", "n_epochs_without_progress",
    "early_stopping", "n_trees", "ntrees", "knn_distance_metric", "search_k", "neighbour_search", "precompute",
    "negative_sampling", "model",
    "supervision_metric", "supervision_weight", "validation_fraction", "learning_rate",
    "weight_decay",
    "annoy_index_path", "callbacks",
    "build_index_on_disk", "neighbour_matrix", "verbose", "random_state"
  ))
})

test_that("annoy_index_path has ~ expanded", {
  args <- ivis:::prepare_args(list(annoy_index_path = "~/index.ann"))
  expect_identical(args$annoy_index_path, path.expand("~/index.ann"))
})
