CREATE TABLE `answered_channels` (
	`guild_id` text NOT NULL,
	`channel_id` text NOT NULL,
	`added_by` text NOT NULL,
	`added_at` integer NOT NULL,
	PRIMARY KEY(`guild_id`, `channel_id`)
);
--> statement-breakpoint
CREATE TABLE `bot_starts` (
	`id` integer PRIMARY KEY NOT NULL,
	`started_at` integer NOT NULL,
	`pid` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `budget_audit` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`guild_id` text NOT NULL,
	`scope` text NOT NULL,
	`user_id` text DEFAULT '' NOT NULL,
	`old_amount_micros` integer,
	`old_period` text,
	`new_amount_micros` integer,
	`new_period` text,
	`changed_by` text NOT NULL,
	`changed_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `budget_audit_guild` ON `budget_audit` (`guild_id`,`changed_at`);--> statement-breakpoint
CREATE TABLE `budgets` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`scope` text NOT NULL,
	`guild_id` text NOT NULL,
	`user_id` text DEFAULT '' NOT NULL,
	`amount_micros` integer NOT NULL,
	`period` text NOT NULL,
	`set_by` text NOT NULL,
	`set_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `budgets_scope_guild_user` ON `budgets` (`guild_id`,`scope`,`user_id`);--> statement-breakpoint
CREATE TABLE `guild_settings` (
	`guild_id` text PRIMARY KEY NOT NULL,
	`escalation_mode` text DEFAULT 'auto' NOT NULL,
	`show_footer` integer DEFAULT true NOT NULL,
	`alerts_channel_id` text,
	`updated_by` text NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `reservations` (
	`request_id` text PRIMARY KEY NOT NULL,
	`turn_id` text NOT NULL,
	`user_id` text NOT NULL,
	`guild_id` text,
	`channel_id` text,
	`provider` text NOT NULL,
	`model` text NOT NULL,
	`purpose` text NOT NULL,
	`amount_micros` integer NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`holder_pid` integer NOT NULL
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `spend_counters` (
	`kind` text NOT NULL,
	`guild_key` text NOT NULL,
	`user_key` text NOT NULL,
	`day_start` integer NOT NULL,
	`day_spent_micros` integer NOT NULL,
	`day_reserved_micros` integer NOT NULL,
	`week_start` integer NOT NULL,
	`week_spent_micros` integer NOT NULL,
	`week_reserved_micros` integer NOT NULL,
	`month_start` integer NOT NULL,
	`month_spent_micros` integer NOT NULL,
	`month_reserved_micros` integer NOT NULL,
	PRIMARY KEY(`kind`, `guild_key`, `user_key`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `turns` (
	`turn_id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`guild_id` text,
	`channel_id` text,
	`status` text NOT NULL,
	`models` text NOT NULL,
	`final_model` text NOT NULL,
	`escalation_source` text,
	`escalation_reason` text,
	`category` text,
	`confidence` real,
	`tokens` integer NOT NULL,
	`cost_micros` integer NOT NULL,
	`smart_only_cost_micros` integer NOT NULL,
	`question` text NOT NULL,
	`answer` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `turns_user_channel` ON `turns` (`user_id`,`channel_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `turns_user_guild` ON `turns` (`guild_id`,`user_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `usage_ledger` (
	`id` integer PRIMARY KEY NOT NULL,
	`request_id` text NOT NULL,
	`turn_id` text NOT NULL,
	`user_id` text NOT NULL,
	`guild_id` text,
	`channel_id` text,
	`provider` text NOT NULL,
	`model` text NOT NULL,
	`purpose` text NOT NULL,
	`outcome` text NOT NULL,
	`input_tokens` integer NOT NULL,
	`cached_input_tokens` integer NOT NULL,
	`cache_write_tokens` integer NOT NULL,
	`output_tokens` integer NOT NULL,
	`cost_micros` integer NOT NULL,
	`smart_cost_micros` integer NOT NULL,
	`reserved_micros` integer NOT NULL,
	`charged_at` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `usage_ledger_request_id` ON `usage_ledger` (`request_id`);--> statement-breakpoint
CREATE INDEX `usage_ledger_user_period` ON `usage_ledger` (`guild_id`,`user_id`,`charged_at`,`model`,`cost_micros`,`smart_cost_micros`,`input_tokens`,`cached_input_tokens`,`cache_write_tokens`,`output_tokens`);