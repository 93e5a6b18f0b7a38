-- Variable published_csv: path of config/published.csv (model, em, n, protocol, source).
INSERT INTO published_rows
SELECT model, em, n, protocol, source
FROM read_csv(getvariable('published_csv'), header = true,
              columns = {'model': 'VARCHAR', 'em': 'DOUBLE', 'n': 'INTEGER',
                         'protocol': 'VARCHAR', 'source': 'VARCHAR'});
