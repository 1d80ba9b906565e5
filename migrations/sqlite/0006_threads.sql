-- /settings threads: off for every server until its admins turn it on.
ALTER TABLE `guild_settings` ADD `answers_in_threads` integer DEFAULT false NOT NULL;