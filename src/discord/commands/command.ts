import {
  type ChatInputCommandInteraction,
  MessageFlags,
  PermissionFlagsBits,
  type RepliableInteraction,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
} from 'discord.js';
import type { Config } from '../../config.js';
import type { AnswerContext } from '../answer.js';
import { NO_MENTIONS } from '../live-reply.js';

/** What a command handler gets: the app, the client, the configuration, and a signal for shutdown. */
export interface CommandContext extends AnswerContext {
  config: Config;
  /** Aborted at shutdown (after the grace period) or when the interaction's time is up. */
  signal: AbortSignal;
  /** How long an interaction may run before it is stopped (default: 14 minutes of its 15). */
  interactionDeadlineMs?: number | undefined;
  /** The clock the usage views read (tests move it); default Date.now. */
  now?: (() => number) | undefined;
}

/** One slash command: its registration (as sent to Discord) and its handler. */
export interface SlashCommand {
  data: RESTPostAPIChatInputApplicationCommandsJSONBody;
  execute(interaction: ChatInputCommandInteraction, context: CommandContext): Promise<void>;
}

/**
 * A refusal meant for the person: denied, invalid input, over budget. The dispatcher shows its message,
 * privately; anything else thrown is logged and answered with a short apology.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}

/** Says something to the person who used the command, privately, whatever state the interaction is in. */
export async function replyPrivately(interaction: RepliableInteraction, content: string): Promise<void> {
  const options = { content, allowedMentions: NO_MENTIONS };
  if (interaction.deferred && !interaction.replied) {
    // A deferral fixed the reply's visibility already; a public one is replaced by a private follow-up.
    if (interaction.ephemeral) await interaction.editReply(options);
    else {
      await interaction.deleteReply().catch(() => {});
      await interaction.followUp({ ...options, flags: MessageFlags.Ephemeral });
    }
  } else if (interaction.replied) {
    await interaction.followUp({ ...options, flags: MessageFlags.Ephemeral });
  } else {
    await interaction.reply({ ...options, flags: MessageFlags.Ephemeral });
  }
}

/**
 * Whether the person may change this server's budgets and settings: Manage Server, or one of the bot's
 * operators. Checked here, not only by Discord: server admins can change who sees a command.
 */
export function canAdminister(interaction: RepliableInteraction, config: Config): boolean {
  if (config.operatorIds.includes(interaction.user.id)) return true;
  return interaction.inGuild() && interaction.memberPermissions.has(PermissionFlagsBits.ManageGuild);
}

/** The server the command was used in; refuses (writing nothing) in DMs. */
export function requireServer(interaction: RepliableInteraction, what: string): string {
  if (!interaction.inGuild()) throw new UserError(`${what} works in a server, not in direct messages.`);
  return interaction.guildId;
}

/** Refuses, writing nothing, unless the person may administer this server's bot. */
export function requireAdmin(interaction: RepliableInteraction, context: CommandContext, what: string): void {
  if (!canAdminister(interaction, context.config)) {
    throw new UserError(
      `${what} needs the Manage Server permission (or being one of the bot's operators). Nothing was changed.`,
    );
  }
}

/** Refuses, showing nothing, unless the person is one of the bot's operators (BOT_OPERATOR_IDS). */
export function requireOperator(
  interaction: RepliableInteraction,
  context: CommandContext,
  what: string,
): void {
  if (!context.config.operatorIds.includes(interaction.user.id)) {
    throw new UserError(`${what} is only for the bot's operators (BOT_OPERATOR_IDS).`);
  }
}
