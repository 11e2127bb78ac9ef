test_that("every exported function and S3 method has a help page", {
  db <- tools::Rd_db("ivis")
  aliases <- unlist(lapply(db, tools:::.Rd_get_metadata, "alias"))
  exports <- getNamespaceExports("ivis")
  expect_true(length(exports) >= 5L)
  expect_setequal(setdiff(exports, aliases), character())
  methods <- c("predict.ivis_model", "RunIvis.Seurat", "calculateIvis.SingleCellExperiment",
               "calculateIvis.SummarizedExperiment")
  expect_setequal(setdiff(methods, aliases), character())
})
