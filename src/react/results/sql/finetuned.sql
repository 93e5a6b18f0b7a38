-- One finetuned model (parameters: model, base_model, dataset, n_train).
INSERT INTO finetuned_rows VALUES (?, ?, ?, ?);
