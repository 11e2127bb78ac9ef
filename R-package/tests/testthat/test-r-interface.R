# What makes the package feel like R: one-call embedding, summaries, R errors.

test_that("ivis(X), in the style of umap(X), is an error that names ivis_embed()", {
  X <- iris_X()
  expect_error(ivis::ivis(X), "first argument is embedding_dims, but it got a 150 x 4 matrix")
  expect_error(ivis::ivis(X), "ivis_embed(X, ...)", fixed = TRUE)
  expect_error(ivis::ivis(as.data.frame(X)), "150 x 4 data frame")
})

test_that("ivis_embed() returns the embedding with the model attached", {
  skip_if_no_ivis()
  X <- iris_X()
  xy <- ivis::ivis_embed(X, epochs = 2, verbose = 0, random_state = 3)
  expect_true(is.matrix(xy))
  expect_identical(dim(xy), c(150L, 2L))
  expect_identical(rownames(xy), rownames(X))
  model <- attr(xy, "model")
  expect_s3_class(model, "ivis_model")
  expect_equal(predict(model, X), xy, ignore_attr = TRUE)
  expect_identical(model$get_params()$k, 15L) # a tenth of the rows
  # the same seed gives the same embedding as the two-step form
  same <- ivis::ivis(k = 15, batch_size = 75, epochs = 2, verbose = 0, random_state = 3)$fit_transform(X)
  expect_equal(unclass(xy)[, ], same, ignore_attr = TRUE)
  # small data works with the chosen k and batch_size
  small <- ivis::ivis_embed(X[1:30, ], epochs = 1, verbose = 0, embedding_dims = 3)
  expect_identical(dim(small), c(30L, 3L))
  expect_identical(attr(small, "model")$get_params()[c("k", "batch_size")],
                   list(k = 3L, batch_size = 15L))
  expect_error(ivis::ivis_embed(X, k = 150), "largest valid k is 149")
})

test_that("summary(), plot() and loss_history() describe a model", {
  skip_if_no_ivis()
  model <- fitted_model(supervised = TRUE)
  history <- model$loss_history()
  expect_identical(names(history), c("epoch", "loss"))
  expect_identical(history$epoch, 1:2)
  expect_true(all(is.finite(history$loss)))
  s <- summary(model)
  expect_s3_class(s, "summary_ivis_model")
  expect_true(s$fitted)
  expect_true(s$supervised)
  expect_identical(s$classes, levels(iris$Species))
  expect_identical(s$n_features, 4L)
  expect_identical(s$epochs, 2L)
  expect_identical(s$params$k, 10L)
  expect_null(s$params$distance) # a default is not listed
  expect_output(print(s), "4 features -> 2 dimensions; 2 epochs trained")
  expect_output(print(summary(small_ivis())), "not fitted")
  pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  expect_identical(plot(model), model)
  expect_error(plot(small_ivis()), "has not been trained yet")
  held <- small_ivis(validation_fraction = 0.2)$fit(iris_X(), iris$Species)
  expect_identical(names(held$loss_history()), c("epoch", "loss", "validation_loss"))
  expect_identical(plot(held), held)
})

test_that("set_params() changes parameters with the integer coercion of ivis()", {
  skip_if_no_ivis()
  model <- small_ivis()
  expect_identical(model$set_params(k = 12, epochs = 3, distance = "cosine"), model)
  raw <- reticulate::py_get_attr(model$py, "k")
  expect_s3_class(raw, "python.builtin.int")
  expect_identical(model$get_params()[c("k", "epochs", "distance")],
                   list(k = 12L, epochs = 3L, distance = "cosine"))
  model$set_params(neighbour_matrix = exact_neighbours(iris_X(), 3))
  expect_equal(min(model$py$neighbour_matrix), 0) # 1-based from R, 0-based in Python
  expect_error(model$set_params(kk = 1), "`kk` is not a parameter of ivis()")
  expect_error(model$set_params(10), "named parameters")
  expect_error(model$set_params(k = NA), "`k` is NA")
})

test_that("saveRDS() of a model gives one that says to use save_model()", {
  skip_if_no_ivis()
  file <- tempfile(fileext = ".rds")
  on.exit(unlink(file), add = TRUE)
  saveRDS(fitted_model(), file)
  restored <- readRDS(file)
  expect_error(restored$transform(iris_X()), "save_model\\(path\\).*load_ivis\\(path\\)")
  expect_error(summary(restored), "restored from saveRDS")
  expect_output(print(restored), "not usable")
})

test_that("random_state beyond R's integer range reaches Python unchanged", {
  skip_if_no_ivis()
  for (seed in c(2^40, 3e9, 2^31)) {
    model <- ivis::ivis(random_state = seed)
    raw <- reticulate::py_get_attr(model$py, "random_state")
    expect_identical(reticulate::py_str(raw), format(seed, scientific = FALSE))
    expect_identical(model$get_params()$random_state, seed)
  }
  expect_error(ivis::ivis(random_state = -1)$fit(iris_X()), "random_state must be a seed >= 0")
})

test_that("score_samples() columns follow the factor's levels", {
  skip_if_no_ivis()
  X <- iris_X()
  y <- factor(iris$Species, levels = c("virginica", "setosa", "versicolor"))
  model <- small_ivis()$fit(X, y)
  scores <- model$score_samples(X)
  expect_identical(colnames(scores), levels(y))
  expect_identical(as.character(model$py$classes_), levels(y))
  # the order survives saving and loading
  path <- tempfile("ivis-model-")
  on.exit(unlink(path, recursive = TRUE), add = TRUE)
  model$save_model(path)
  expect_identical(colnames(ivis::load_ivis(path)$score_samples(X)), levels(y))
})

test_that("a numeric Y that is not whole with the default loss names supervision_metric", {
  skip_if_no_ivis()
  expect_error(small_ivis()$fit(iris_X(), iris$Petal.Width), "supervision_metric")
})

test_that("errors speak R: 1-based positions, R syntax, the method that was called", {
  skip_if_no_ivis()
  X <- iris_X()
  model <- fitted_model()
  bad <- X
  bad[3, 2] <- NA
  expect_error(model$transform(bad), "at row 3, column 2). Remove or impute them before calling transform()",
               fixed = TRUE)
  expect_error(small_ivis()$fit(bad), "before calling fit()", fixed = TRUE)
  huge <- X
  huge[5, 4] <- 1e300
  expect_no_warning(expect_error(model$transform(huge), "at row 5, column 4"))
  skip_if_not_installed("Matrix")
  sparse <- Matrix::Matrix(abs(X), sparse = TRUE)
  sparse[7, 3] <- Inf
  expect_error(model$transform(sparse), "the first, Inf, at row 7, column 3")
  path <- tempfile("ivis-model-")
  dir.create(path)
  on.exit(unlink(path, recursive = TRUE), add = TRUE)
  expect_error(model$save_model(path), "Pass overwrite = TRUE", fixed = TRUE)
  expect_error(ivis::ivis(k = 200)$fit(X), "e.g. ivis(k = 15)", fixed = TRUE)
})

test_that("Python messages are rewritten in R syntax", {
  expect_identical(ivis:::r_syntax("Pass overwrite=True, e.g. Ivis(k=15)."),
                   "Pass overwrite = TRUE, e.g. ivis(k = 15).")
  expect_identical(ivis:::r_syntax("must be None or False; k >= 1; None of them"),
                   "must be NULL or FALSE; k >= 1; None of them")
})
