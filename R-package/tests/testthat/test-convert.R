# Conversion of data and labels.

test_that("numeric matrices and data frames become double matrices", {
  X <- matrix(1:6, nrow = 3, dimnames = list(c("a", "b", "c"), NULL))
  out <- ivis:::check_X(X)
  expect_type(out, "double")
  expect_identical(rownames(out), c("a", "b", "c"))
  df <- data.frame(x = 1:3, y = c(0.5, 1, 2), z = c(TRUE, FALSE, TRUE))
  out <- ivis:::check_X(df)
  expect_true(is.matrix(out))
  expect_type(out, "double")
  expect_null(rownames(out)) # automatic row names are not kept
  rownames(df) <- c("r1", "r2", "r3")
  expect_identical(rownames(ivis:::check_X(df)), c("r1", "r2", "r3"))
})

test_that("non-numeric data is an R error naming the columns", {
  expect_error(ivis:::check_X(iris), "column 'Species' is not \\(factor\\)")
  df <- data.frame(a = 1:2, b = c("x", "y"), c = factor(c("u", "v")))
  expect_error(ivis:::check_X(df), "columns 'b', 'c' are not \\(character, factor\\)")
  expect_error(ivis:::check_X(matrix(letters[1:4], 2)), "it is a character matrix")
  expect_error(ivis:::check_X(1:10), "For a single sample use matrix\\(x, nrow = 1\\)")
  expect_error(ivis:::check_X(list(1, 2)), "must be a numeric matrix")
})

test_that("sparse Matrix data stays sparse", {
  skip_if_not_installed("Matrix")
  S <- Matrix::rsparsematrix(5, 4, density = 0.5)
  expect_s4_class(ivis:::check_X(S), "dgCMatrix")
  expect_s4_class(ivis:::check_X(methods::as(S, "TsparseMatrix")), "dgCMatrix")
  expect_true(is.matrix(ivis:::check_X(Matrix::Matrix(as.matrix(S), sparse = FALSE))))
})

test_that("labels: factors and characters are classes, NA marks a missing label", {
  y <- ivis:::check_Y(factor(c("b", NA, "a"), levels = c("b", "a", "c")), 3)
  expect_identical(y, factor(c("b", NA, "a"), levels = c("b", "a", "c"))) # levels kept
  y <- ivis:::check_Y(c("x", NA), 2)
  expect_identical(as.vector(y), c("x", NA))
  expect_true(isTRUE(attr(y, "ivis_labels")))
  expect_identical(ivis:::check_Y(1:3, 3), c(1, 2, 3)) # numeric: regression, double
  expect_null(ivis:::check_Y(NULL, 3))
  expect_error(ivis:::check_Y(1:3, 4), "`Y` has 3 labels but `X` has 4 rows")
  expect_error(ivis:::check_Y(list(1, 2), 2), "must be a factor or character vector")
  expect_error(ivis:::check_Y(data.frame(a = 1:2, b = 1:2), 2), "data frame with 2 columns")
})

test_that("Python receives float64 arrays, scipy CSR matrices and None for NA labels", {
  skip_if_no_ivis()
  np <- reticulate::import("numpy", convert = FALSE)
  a <- ivis:::x_to_python(ivis:::check_X(matrix(1:6, nrow = 2)))
  expect_identical(reticulate::py_to_r(a$dtype$name), "float64")
  expect_identical(reticulate::py_to_r(a$shape), list(2L, 3L))
  expect_true(reticulate::py_to_r(a$flags$c_contiguous))
  expect_identical(reticulate::py_to_r(a$tolist()), list(c(1, 3, 5), c(2, 4, 6)))

  skip_if_not_installed("Matrix")
  S <- Matrix::sparseMatrix(i = c(1, 2), j = c(2, 3), x = c(5, 7), dims = c(2, 3))
  s <- ivis:::x_to_python(ivis:::check_X(S))
  expect_identical(reticulate::py_to_r(s$format), "csr")
  expect_identical(reticulate::py_to_r(s$toarray()$tolist()), list(c(0, 5, 0), c(0, 0, 7)))

  # a factor becomes a pandas Categorical: its levels, in order, are the classes
  y <- ivis:::y_to_python(ivis:::check_Y(factor(c("b", NA, "a"), levels = c("b", "a", "c")), 3))
  expect_identical(reticulate::py_to_r(y$categories$tolist()), c("b", "a", "c"))
  expect_identical(reticulate::py_to_r(y$codes$tolist()), c(0L, -1L, 1L))
  y <- ivis:::y_to_python(ivis:::check_Y(c("b", NA, "a"), 3))
  expect_identical(reticulate::py_to_r(y$dtype$name), "object")
  expect_identical(reticulate::py_to_r(y$tolist()), list("b", NULL, "a"))
  r <- ivis:::y_to_python(ivis:::check_Y(c(1L, 2L), 2))
  expect_identical(reticulate::py_to_r(r$dtype$name), "float64")
})
