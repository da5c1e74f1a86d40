-- The report of a migration, when the site moved in this run.
ALTER TABLE site_runs ADD COLUMN migration_json TEXT;
