# Training, embedding, saving and loading through the Python core.

test_that("R defaults of ivis() are the Python defaults", {
  skip_if_no_ivis()
  py_defaults <- ivis:::ivis_core()$Ivis()$get_params()
  r_defaults <- lapply(formals(ivis::ivis), eval)
  expect_setequal(names(r_defaults), names(py_defaults))
  for (name in names(r_defaults)) {
    expect_equal(r_defaults[[name]], py_defaults[[name]], label = name)
  }
})

test_that("ivis() forwards only the supplied arguments, integers as Python ints", {
  skip_if_no_ivis()
  recorder <- reticulate::py_run_string(paste(
    "class Recorder:",
    "    calls = []",
    "    def __init__(self, *args, **kwargs):",
    "        type(self).calls.append((args, {k: type(v).__name__ for k, v in kwargs.items()}))",
    sep = "\n"
  ), local = TRUE, convert = FALSE)$Recorder
  state <- get(".state", envir = asNamespace("ivis"))
  real <- ivis:::ivis_core()
  state$core <- list(Ivis = recorder)
  on.exit(state$core <- real, add = TRUE)
  ivis::ivis(k = 5, epochs = 3, distance = "cosine", supervision_weight = 1)
  ivis::ivis()
  calls <- reticulate::py_to_r(recorder$calls)
  expect_identical(calls[[1]][[2]], list(
    k = "int", distance = "str", epochs = "int", supervision_weight = "float"
  ))
  expect_identical(calls[[2]][[2]], setNames(list(), character()))
})

test_that("fit() returns the model and transform() gives a matrix with row names", {
  skip_if_no_ivis()
  X <- iris_X()
  model <- small_ivis()
  expect_s3_class(model, "ivis_model")
  expect_true(inherits(model$py, "python.builtin.object"))
  fitted <- model$fit(X)
  expect_identical(fitted, model)
  xy <- model$transform(X)
  expect_true(is.matrix(xy))
  expect_type(xy, "double")
  expect_identical(dim(xy), c(150L, 2L))
  expect_identical(rownames(xy), rownames(X))
  expect_true(all(is.finite(xy)))
  # data frames, integer matrices and sparse matrices embed like the numeric matrix
  expect_equal(model$transform(as.data.frame(X)), xy)
  Xi <- round(X * 10)
  expect_equal(model$transform(`storage.mode<-`(Xi, "integer")), model$transform(Xi))
  skip_if_not_installed("Matrix")
  expect_equal(model$transform(Matrix::Matrix(X, sparse = TRUE)), xy, tolerance = 1e-6)
})

test_that("the same random_state gives the same embedding", {
  skip_if_no_ivis()
  X <- iris_X()
  a <- small_ivis(random_state = 11, embedding_dims = 3)$fit_transform(X)
  expect_identical(dim(a), c(150L, 3L))
  b <- small_ivis(random_state = 11, embedding_dims = 3)$fit(as.data.frame(X))$transform(X)
  expect_equal(a, b)
})

test_that("sparse Matrix data trains", {
  skip_if_no_ivis()
  skip_if_not_installed("Matrix")
  X <- abs(iris_X())
  X[X < 0.5] <- 0
  S <- Matrix::Matrix(X, sparse = TRUE)
  expect_s4_class(S, "dgCMatrix")
  xy <- small_ivis()$fit_transform(S)
  expect_identical(dim(xy), c(150L, 2L))
  expect_identical(rownames(xy), rownames(X))
  expect_true(all(is.finite(xy)))
})

test_that("predict() embeds new data and print() shows the state", {
  skip_if_no_ivis()
  X <- iris_X()
  expect_output(print(small_ivis(k = 12)), "<ivis model> \\(not fitted\\)")
  expect_output(print(small_ivis(k = 12)), "k = 12,")
  model <- fitted_model()
  expect_output(print(model), "<ivis model> \\(fitted\\)")
  expect_equal(predict(model, X[1:5, ]), model$transform(X[1:5, ]))
  expect_identical(rownames(predict(model, X[1:5, ])), rownames(X)[1:5])
  expect_error(predict(model), "needs `newdata`")
  expect_identical(model$get_params()$k, 10L)
})

test_that("Python errors are R errors with the Python message", {
  skip_if_no_ivis()
  X <- iris_X()
  err <- tryCatch(ivis::ivis(k = -3)$fit(X), error = identity)
  expect_s3_class(err, "ivis_python_error")
  np <- reticulate::import("numpy", convert = FALSE)
  py_err <- tryCatch(ivis:::ivis_core()$Ivis(k = -3L)$fit(np$asarray(unname(X))), error = identity)
  expect_identical(conditionMessage(err), reticulate::py_str(py_err))
  expect_match(conditionMessage(err), "k")
  expect_false(grepl("py_last_error", conditionMessage(err), fixed = TRUE))
  expect_error(ivis::ivis(not_a_parameter = 1), "unused argument")
  expect_error(small_ivis()$transform(X), class = "ivis_python_error") # not fitted
  expect_error(small_ivis()$fit(iris), "column 'Species'")
})

test_that("a saved model loads back and embeds identically", {
  skip_if_no_ivis()
  X <- iris_X()
  model <- fitted_model()
  path <- file.path(tempfile("ivis-model-"))
  on.exit(unlink(path, recursive = TRUE), add = TRUE)
  expect_identical(model$save_model(path), model)
  expect_true(dir.exists(path))
  loaded <- ivis::load_ivis(path)
  expect_s3_class(loaded, "ivis_model")
  expect_equal(loaded$transform(X), model$transform(X))
  expect_identical(loaded$get_params()$k, 10L)
  expect_error(model$save_model(path), class = "ivis_python_error") # exists, no overwrite
  model$save_model(path, overwrite = TRUE)
  expect_error(ivis::load_ivis(file.path(path, "nope")), "no saved ivis model")
})

test_that("supervised training with a factor gives named class scores", {
  skip_if_no_ivis()
  X <- iris_X()
  model <- fitted_model(supervised = TRUE)
  expect_identical(as.vector(model$py$classes_), levels(iris$Species))
  scores <- model$score_samples(X)
  expect_identical(dim(scores), c(150L, 3L))
  expect_identical(colnames(scores), levels(iris$Species))
  expect_identical(rownames(scores), rownames(X))
  expect_equal(unname(rowSums(scores)), rep(1, 150), tolerance = 1e-5)
  expect_equal(predict(model, X, type = "scores"), scores)
  expect_output(print(model), "classes: setosa versicolor virginica")
  # character labels act the same as the factor
  same <- small_ivis()$fit(X, as.character(iris$Species))
  expect_equal(same$score_samples(X), scores)
})

test_that("NA labels train semi-supervised; numeric labels train a regression", {
  skip_if_no_ivis()
  X <- iris_X()
  y <- iris$Species
  y[seq(1, 150, by = 2)] <- NA
  model <- small_ivis()$fit(X, y)
  expect_identical(colnames(model$score_samples(X)), levels(iris$Species))
  expect_error(small_ivis()$fit(X, y[1:10]), "`Y` has 10 labels but `X` has 150 rows")
  reg <- small_ivis(supervision_metric = "mae")$fit(X[, 1:3], X[, 4])
  expect_identical(dim(reg$transform(X[, 1:3])), c(150L, 2L))
  expect_identical(dim(reg$score_samples(X[, 1:3])), c(150L, 1L))
})

test_that("validation_fraction holds out labelled rows of a factor", {
  skip_if_no_ivis()
  X <- iris_X()
  model <- small_ivis(validation_fraction = 0.2, weight_decay = 5)$fit(X, iris$Species)
  expect_length(model$py$validation_indices_, 30L)
  expect_length(model$py$validation_loss_history_, length(model$py$loss_history_))
  expect_equal(model$get_params()$weight_decay, 5)
})

test_that("an h5py dataset opened from R trains out of core and embeds like the same rows in memory", {
  skip_if_no_ivis()
  X <- iris_X()
  path <- tempfile(fileext = ".h5")
  on.exit(unlink(path), add = TRUE)
  h5py <- reticulate::import("h5py")
  np <- reticulate::import("numpy", convert = FALSE)
  writer <- h5py$File(path, "w")
  writer$create_dataset("data", data = np$asarray(unname(X), dtype = "float32"))
  writer$close()
  reader <- h5py$File(path, "r")
  on.exit(reader$close(), add = TRUE, after = FALSE)
  rows <- reader$get("data")
  model <- small_ivis()$fit(rows, shuffle_mode = "batch")
  expect_identical(dim(model$py$neighbour_matrix_), c(150L, 10L))
  from_file <- model$transform(rows)
  expect_identical(dim(from_file), c(150L, 2L))
  expect_true(all(is.finite(from_file)))
  expect_equal(unname(model$transform(X)), from_file, tolerance = 1e-5)
})
