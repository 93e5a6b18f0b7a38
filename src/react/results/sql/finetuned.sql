-- One trained model (parameters: model, base_model, dataset, n_train, method, root_model).
INSERT INTO finetuned_rows VALUES (?, ?, ?, ?, ?, ?);
