-- Indexes for /usage server, /usage bot and /usage export. Built inside the migration's transaction, so
-- writes to these tables wait for the build (about 3 s per million ledger rows); the pool's 15 s statement
-- timeout would stop it on a large ledger, so it is lifted for this transaction alone.
SET LOCAL statement_timeout = 0;--> statement-breakpoint
CREATE INDEX "turns_guild_period" ON "turns" USING btree ("guild_id","created_at","status","escalation_source","cost_micros","smart_only_cost_micros");--> statement-breakpoint
CREATE INDEX "usage_ledger_guild_period" ON "usage_ledger" USING btree ("guild_id","charged_at","id","model","cost_micros","smart_cost_micros","input_tokens","cached_input_tokens","cache_write_tokens","output_tokens","user_id");--> statement-breakpoint
-- How many UTC days the charges span: the reports group a month of a server's calls by day, and without
-- this PostgreSQL takes the day for as many values as the charge times (a sort on disk instead of a hash of
-- 60 groups). Statistics on an expression need PostgreSQL 14 or newer.
CREATE STATISTICS "usage_ledger_charge_day" ON (charged_at / 86400000) FROM "usage_ledger";
