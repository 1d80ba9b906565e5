ALTER TABLE `turns` ADD `check_verdict` text;--> statement-breakpoint
ALTER TABLE `turns` ADD `check_category` text;--> statement-breakpoint
ALTER TABLE `turns` ADD `check_confidence` real;--> statement-breakpoint
ALTER TABLE `turns` ADD `triage_route` text;--> statement-breakpoint
ALTER TABLE `turns` ADD `triage_category` text;--> statement-breakpoint
ALTER TABLE `turns` ADD `triage_confidence` real;