-- /usage server and /usage bot read a server's sums by hour (usage_by_hour, answers_by_hour) instead of
-- its calls: a month of the busiest server is a few hundred rows, not tens of thousands. Triggers keep the
-- sums in the same transaction as every insert into the ledger and the turns (both only ever grow), and
-- the history so far is summed here. The day-led covering indexes the views read until now are dropped:
-- export reads a server's calls by (guild_id, charged_at).
CREATE TABLE `answers_by_hour` (
	`guild_key` text NOT NULL,
	`hour` integer NOT NULL,
	`reason` text NOT NULL,
	`answers` integer NOT NULL,
	`cost_micros` integer NOT NULL,
	`smart_only_cost_micros` integer NOT NULL,
	PRIMARY KEY(`guild_key`, `hour`, `reason`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `usage_by_hour` (
	`guild_key` text NOT NULL,
	`hour` integer NOT NULL,
	`model` text NOT NULL,
	`calls` integer NOT NULL,
	`input_tokens` integer NOT NULL,
	`cached_input_tokens` integer NOT NULL,
	`cache_write_tokens` integer NOT NULL,
	`output_tokens` integer NOT NULL,
	`cost_micros` integer NOT NULL,
	`smart_cost_micros` integer NOT NULL,
	PRIMARY KEY(`guild_key`, `hour`, `model`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `usage_by_hour`
  SELECT COALESCE(guild_id, ''), charged_at / 3600000, model, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens),
    SUM(cache_write_tokens), SUM(output_tokens), SUM(cost_micros), SUM(smart_cost_micros)
  FROM usage_ledger GROUP BY 1, 2, 3;
--> statement-breakpoint
INSERT INTO `answers_by_hour`
  SELECT COALESCE(guild_id, ''), created_at / 3600000, COALESCE(escalation_source, ''), COUNT(*), SUM(cost_micros),
    SUM(smart_only_cost_micros)
  FROM turns WHERE status = 'answered' GROUP BY 1, 2, 3;
--> statement-breakpoint
CREATE TRIGGER `usage_by_hour_add` AFTER INSERT ON `usage_ledger`
BEGIN
  INSERT INTO usage_by_hour VALUES (COALESCE(NEW.guild_id, ''), NEW.charged_at / 3600000, NEW.model, 1,
    NEW.input_tokens, NEW.cached_input_tokens, NEW.cache_write_tokens, NEW.output_tokens, NEW.cost_micros,
    NEW.smart_cost_micros)
  ON CONFLICT (guild_key, hour, model) DO UPDATE SET calls = calls + 1,
    input_tokens = input_tokens + excluded.input_tokens,
    cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
    cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cost_micros = cost_micros + excluded.cost_micros,
    smart_cost_micros = smart_cost_micros + excluded.smart_cost_micros;
END;
--> statement-breakpoint
CREATE TRIGGER `answers_by_hour_add` AFTER INSERT ON `turns` WHEN NEW.status = 'answered'
BEGIN
  INSERT INTO answers_by_hour VALUES (COALESCE(NEW.guild_id, ''), NEW.created_at / 3600000,
    COALESCE(NEW.escalation_source, ''), 1, NEW.cost_micros, NEW.smart_only_cost_micros)
  ON CONFLICT (guild_key, hour, reason) DO UPDATE SET answers = answers + 1,
    cost_micros = cost_micros + excluded.cost_micros,
    smart_only_cost_micros = smart_only_cost_micros + excluded.smart_only_cost_micros;
END;
--> statement-breakpoint
DROP INDEX `turns_guild_day`;--> statement-breakpoint
DROP INDEX `usage_ledger_guild_day`;--> statement-breakpoint
CREATE INDEX `usage_ledger_guild_time` ON `usage_ledger` (`guild_id`,`charged_at`);
