-- /usage server and /usage bot read a server's sums by hour (usage_by_hour, answers_by_hour) instead of
-- its calls: a month of the busiest server is a few hundred rows, not tens of thousands. Statement
-- triggers keep the sums in the same transaction as every insert into the ledger and the turns (both only
-- ever grow), one upsert per statement, its rows in key order (so two transactions lock them in the same
-- order, and queue instead of deadlocking); the history so far is summed here. The covering indexes the
-- views read until now are dropped: export reads a server's calls by (guild_id, charged_at, id).
-- Both tables are locked first, in the strongest mode the migration needs (DROP INDEX's), so that no row
-- is summed twice or missed and no transaction of a running bot holds a weaker lock the migration would
-- have to wait on later (a deadlock); bot processes' statements on them wait for the migration's commit,
-- a few seconds per million ledger rows.
SET LOCAL statement_timeout = 0;--> statement-breakpoint
LOCK TABLE usage_ledger, turns IN ACCESS EXCLUSIVE MODE;--> statement-breakpoint
CREATE TABLE "answers_by_hour" (
	"guild_key" text NOT NULL,
	"hour" bigint NOT NULL,
	"reason" text NOT NULL,
	"answers" bigint NOT NULL,
	"cost_micros" bigint NOT NULL,
	"smart_only_cost_micros" bigint NOT NULL,
	CONSTRAINT "answers_by_hour_guild_key_hour_reason_pk" PRIMARY KEY("guild_key","hour","reason")
);
--> statement-breakpoint
CREATE TABLE "usage_by_hour" (
	"guild_key" text NOT NULL,
	"hour" bigint NOT NULL,
	"model" text NOT NULL,
	"calls" bigint NOT NULL,
	"input_tokens" bigint NOT NULL,
	"cached_input_tokens" bigint NOT NULL,
	"cache_write_tokens" bigint NOT NULL,
	"output_tokens" bigint NOT NULL,
	"cost_micros" bigint NOT NULL,
	"smart_cost_micros" bigint NOT NULL,
	CONSTRAINT "usage_by_hour_guild_key_hour_model_pk" PRIMARY KEY("guild_key","hour","model")
);
--> statement-breakpoint
-- Rewritten at every server's hour of calls: room on each page keeps the updates in place (HOT).
ALTER TABLE usage_by_hour SET (fillfactor = 70);--> statement-breakpoint
ALTER TABLE answers_by_hour SET (fillfactor = 70);--> statement-breakpoint
CREATE FUNCTION usage_by_hour_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_by_hour AS u
    SELECT COALESCE(guild_id, ''), charged_at / 3600000, model, COUNT(*), SUM(input_tokens),
      SUM(cached_input_tokens), SUM(cache_write_tokens), SUM(output_tokens), SUM(cost_micros),
      SUM(smart_cost_micros)
    FROM added GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (guild_key, hour, model) DO UPDATE SET calls = u.calls + excluded.calls,
    input_tokens = u.input_tokens + excluded.input_tokens,
    cached_input_tokens = u.cached_input_tokens + excluded.cached_input_tokens,
    cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens,
    output_tokens = u.output_tokens + excluded.output_tokens,
    cost_micros = u.cost_micros + excluded.cost_micros,
    smart_cost_micros = u.smart_cost_micros + excluded.smart_cost_micros;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER usage_by_hour_add AFTER INSERT ON usage_ledger REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION usage_by_hour_add();
--> statement-breakpoint
CREATE FUNCTION answers_by_hour_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO answers_by_hour AS a
    SELECT COALESCE(guild_id, ''), created_at / 3600000, COALESCE(escalation_source, ''), COUNT(*),
      SUM(cost_micros), SUM(smart_only_cost_micros)
    FROM added WHERE status = 'answered' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (guild_key, hour, reason) DO UPDATE SET answers = a.answers + excluded.answers,
    cost_micros = a.cost_micros + excluded.cost_micros,
    smart_only_cost_micros = a.smart_only_cost_micros + excluded.smart_only_cost_micros;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER answers_by_hour_add AFTER INSERT ON turns REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION answers_by_hour_add();
--> statement-breakpoint
INSERT INTO usage_by_hour
  SELECT COALESCE(guild_id, ''), charged_at / 3600000, model, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens),
    SUM(cache_write_tokens), SUM(output_tokens), SUM(cost_micros), SUM(smart_cost_micros)
  FROM usage_ledger GROUP BY 1, 2, 3;
--> statement-breakpoint
INSERT INTO answers_by_hour
  SELECT COALESCE(guild_id, ''), created_at / 3600000, COALESCE(escalation_source, ''), COUNT(*), SUM(cost_micros),
    SUM(smart_only_cost_micros)
  FROM turns WHERE status = 'answered' GROUP BY 1, 2, 3;
--> statement-breakpoint
DROP INDEX "turns_guild_period";--> statement-breakpoint
DROP INDEX "usage_ledger_guild_period";--> statement-breakpoint
CREATE INDEX "usage_ledger_guild_time" ON "usage_ledger" USING btree ("guild_id","charged_at","id");
