# 1-based neighbour matrices from R.

test_that("a 1-based neighbour matrix becomes a 0-based integer matrix", {
  nm <- matrix(c(2, 3, 1, 3, 1, 2), nrow = 3, byrow = TRUE)
  out <- ivis:::neighbour_matrix_to_0_based(nm)
  expect_identical(out, matrix(c(1L, 2L, 0L, 2L, 0L, 1L), nrow = 3, byrow = TRUE))
  expect_identical(ivis:::neighbour_matrix_to_0_based(as.data.frame(nm)), out)
  expect_identical(ivis:::neighbour_matrix_to_0_based(matrix(as.integer(nm), 3)), out)
})

test_that("invalid neighbour matrices are R errors that say what is wrong", {
  to0 <- ivis:::neighbour_matrix_to_0_based
  expect_error(to0(1:3), "must be a numeric matrix of 1-based row indices")
  expect_error(to0(matrix(letters[1:4], 2)), "must be a numeric matrix")
  expect_error(to0(matrix(c(2, NA, 1, 1), 2)), "1 missing value.*row 2, column 1")
  expect_error(to0(matrix(c(2, 1.5, 1, 1), 2)), "whole numbers.*1.5 at row 2, column 1")
  expect_error(to0(matrix(c(2, 4, 1, 1), 2)), "must lie in 1..2.*found 4 at row 2, column 1")
  expect_error(to0(matrix(c(-1, 1, 1, 2), 2)), "must lie in 1..2")
  # 0-based input (as written in Python) is recognised and the fix named
  expect_error(to0(matrix(c(1, 0, 1, 0), 2)), "looks 0-based.*add 1")
})

test_that("prepare_args() converts neighbour_matrix and leaves Python objects alone", {
  nm <- matrix(c(2, 1), nrow = 2)
  expect_identical(ivis:::prepare_args(list(neighbour_matrix = nm))$neighbour_matrix,
                   matrix(c(1L, 0L), nrow = 2))
  expect_error(ivis::ivis(neighbour_matrix = matrix(c(0, 0), 2)), "1-based")
})

test_that("the neighbour matrix reaches Python 0-based as int64 and trains", {
  skip_if_no_ivis()
  X <- iris_X()
  nm <- exact_neighbours(X, 10)
  model <- small_ivis(neighbour_matrix = nm)
  py_nm <- model$py$neighbour_matrix
  raw <- reticulate::py_get_attr(model$py, "neighbour_matrix")
  expect_identical(reticulate::py_to_r(raw$dtype$name), "int64")
  expect_equal(unname(py_nm), nm - 1, ignore_attr = TRUE)
  expect_equal(min(py_nm), 0)
  # get_params() gives it back 1-based
  expect_equal(model$get_params()$neighbour_matrix, nm, ignore_attr = TRUE)
  model$fit(X)
  expect_identical(dim(model$transform(X)), c(150L, 2L))
})
