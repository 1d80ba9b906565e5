import {
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Message,
  MessageFlags,
  SlashCommandBuilder,
  type ThreadChannel,
} from 'discord.js';
import { newId } from '../../core/ids.js';
import { modelLabel } from '../../core/models.js';
import type { ChatMessage } from '../../core/chat.js';
import type { TurnRecord } from '../../core/turn.js';
import { streamTurn, turnOfEscalateButton } from '../answer.js';
import { buildConversation, isBlank } from '../conversation.js';
import { interactionSurface, messageSurface, NO_MENTIONS, type ReplySurface } from '../live-reply.js';
import { roleIdsOf } from '../members.js';
import { threadSurface } from '../threads.js';
import { type CommandContext, replyPrivately, type SlashCommand, UserError } from './command.js';

/**
 * /escalate: the smart model answers. With a prompt, directly; without, it answers the person's latest
 * question in this channel again, improving on the earlier answer, as a reply to that question.
 */
export const escalate: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('escalate')
    .setDescription('Have Claude Haiku answer: your last question here again, or a new prompt')
    .addStringOption((option) =>
      option
        .setName('prompt')
        .setDescription('A question for Claude Haiku; leave out to improve on your last answer here')
        .setMaxLength(6000),
    )
    .toJSON(),

  async execute(interaction, context) {
    const prompt = interaction.options.getString('prompt')?.trim();
    if (prompt !== undefined && !isBlank(prompt)) {
      await answerDirectly(interaction, prompt, context);
      return;
    }
    const smart = modelLabel(context.app.engine.smartModel);
    const source = await context.app.storage.turns.latest(interaction.user.id, interaction.channelId);
    if (!source) {
      throw new UserError(
        `You have no earlier question in this channel for ${smart} to answer again. ` +
          `Use \`/escalate prompt:…\` to ask ${smart} directly.`,
      );
    }
    await answerAgain(interaction, source, context);
  },
};

/** The Escalate button under a fast-model answer: the same as /escalate for that answer. */
export async function handleEscalateButton(
  interaction: ButtonInteraction,
  context: CommandContext,
): Promise<boolean> {
  const turnId = turnOfEscalateButton(interaction.customId);
  if (turnId === undefined) return false;
  const source = await context.app.storage.turns.byId(turnId);
  if (!source) throw new UserError('That answer is no longer on record, so it cannot be escalated.');
  if (source.userId !== interaction.user.id) {
    throw new UserError('Only the person who asked can escalate this answer.');
  }
  await answerAgain(interaction, source, context);
  return true;
}

async function answerDirectly(
  interaction: ChatInputCommandInteraction,
  prompt: string,
  context: CommandContext,
): Promise<void> {
  const deferred = await interaction.deferReply({ withResponse: true });
  const settings = await context.app.storage.settings.of(interaction.guildId);
  await streamTurn(
    {
      turnId: newId(),
      owner: {
        userId: interaction.user.id,
        guildId: interaction.guildId,
        channelId: interaction.channelId,
        roleIds: roleIdsOf(interaction.member, interaction.guildId),
      },
      conversation: [{ role: 'user', content: prompt }],
      mode: settings.escalationMode,
      choice: 'smart',
      signal: context.signal,
      questionMessageId: deferred.resource?.message?.id,
    },
    interactionSurface(interaction, false),
    settings,
    context,
    { refuse: (text) => replyPrivately(interaction, text) },
  );
}

/**
 * The smart model improves on an earlier answer, once: the first request claims it, so a second click
 * charges nothing; a request that gets no answer (denied, providers down) gives the claim back.
 */
async function answerAgain(
  interaction: ChatInputCommandInteraction | ButtonInteraction,
  source: TurnRecord,
  context: CommandContext,
): Promise<void> {
  const { app } = context;
  const smart = modelLabel(app.engine.smartModel);
  const settings = await app.storage.settings.of(interaction.guildId);
  if (settings.escalationMode === 'off') {
    throw new UserError(`Escalation to ${smart} is turned off in this server.`);
  }
  if (!(await app.storage.turns.claimEscalation(source.turnId, interaction.user.id))) {
    throw new UserError(`${smart} has already answered this again; nothing more was charged.`);
  }
  let isAnswered = false;
  try {
    // Acknowledged privately at once; the answer itself goes where the question was.
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    const { question, thread } = await questionMessage(interaction, source, context);
    const conversation: ChatMessage[] = [{ role: 'user', content: source.question }];
    let surface: ReplySurface = interactionSurface(interaction, true);
    let warnings: string[] = [];
    if (question) {
      // Where the earlier answer went: in the thread opened from the question, else as a reply to it.
      surface = thread ? threadSurface(thread, question, context.log) : messageSurface(question);
      // A question asked in chat is rebuilt as it was asked (reply chain, attachments); an /ask answer
      // stands for its question, which the turn kept.
      if (question.author.id !== context.client.user.id) {
        const built = await buildConversation(question, context.client.user.id);
        conversation.splice(0, conversation.length, ...built.messages);
        warnings = built.warnings;
      }
    }
    const { result, messages } = await streamTurn(
      {
        turnId: newId(),
        owner: {
          userId: interaction.user.id,
          guildId: interaction.guildId,
          channelId: interaction.channelId,
          roleIds: roleIdsOf(interaction.member, interaction.guildId),
        },
        conversation,
        mode: settings.escalationMode,
        choice: 'smart',
        earlierAnswer: source.answer,
        warnings,
        signal: context.signal,
        questionMessageId: question?.id,
      },
      surface,
      settings,
      context,
      {
        // The claim is given back before the person hears why, so that trying again works at once.
        refuse: async (text) => {
          await app.storage.turns.releaseEscalation(source.turnId);
          return replyPrivately(interaction, text);
        },
      },
    );
    isAnswered = result?.status === 'answered';
    const first = messages[0];
    if (isAnswered && question && first) {
      await interaction.editReply({
        content: `${smart} answered again: ${first.url}`,
        allowedMentions: NO_MENTIONS,
      });
    }
  } finally {
    if (!isAnswered) await app.storage.turns.releaseEscalation(source.turnId);
  }
}

/**
 * The chat message an earlier turn answered, if it still exists and can be replied to; and the thread its
 * answer went in, when that thread was opened from it (/settings threads): the question itself is in
 * the thread's parent channel, under the thread's own id.
 */
async function questionMessage(
  interaction: ChatInputCommandInteraction | ButtonInteraction,
  source: TurnRecord,
  context: CommandContext,
): Promise<{ question?: Message; thread?: ThreadChannel }> {
  if (!source.questionMessageId || !source.channelId) return {};
  try {
    const channel = interaction.channel ?? (await context.client.channels.fetch(source.channelId));
    if (!channel?.isTextBased()) return {};
    if (channel.isThread() && channel.id === source.questionMessageId) {
      return { question: (await channel.fetchStarterMessage()) ?? undefined, thread: channel };
    }
    return { question: await channel.messages.fetch(source.questionMessageId) };
  } catch (error) {
    context.log.info({ err: error, turnId: source.turnId }, 'the question to answer again is gone');
    return {};
  }
}
