CREATE TABLE `budget_notices` (
	`kind` text NOT NULL,
	`guild_key` text NOT NULL,
	`user_key` text NOT NULL,
	`window_start` integer NOT NULL,
	`percent` integer NOT NULL,
	`notified_at` integer NOT NULL,
	PRIMARY KEY(`kind`, `guild_key`, `user_key`, `window_start`, `percent`)
);
--> statement-breakpoint
CREATE TABLE `escalations` (
	`turn_id` text PRIMARY KEY NOT NULL,
	`requested_by` text NOT NULL,
	`requested_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `turns` ADD `question_message_id` text;