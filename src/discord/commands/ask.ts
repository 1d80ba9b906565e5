import { MessageFlags, SlashCommandBuilder } from 'discord.js';
import { newId } from '../../core/ids.js';
import type { ModelChoice } from '../../core/turn.js';
import { streamTurn } from '../answer.js';
import { isBlank } from '../conversation.js';
import { interactionSurface } from '../live-reply.js';
import { roleIdsOf } from '../members.js';
import { replyPrivately, type SlashCommand, UserError } from './command.js';

const MODEL_CHOICES: readonly ModelChoice[] = ['auto', 'fast', 'smart'];

/** /ask: a question without mentioning the bot, answered by the same engine, streamed into the reply. */
export const ask: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('ask')
    .setDescription('Ask tierbot a question')
    .addStringOption((option) =>
      option.setName('prompt').setDescription('Your question').setRequired(true).setMaxLength(6000),
    )
    .addStringOption((option) =>
      option
        .setName('model')
        .setDescription(
          'auto: GPT-4o Mini, escalating when needed; fast: GPT-4o Mini only; smart: Claude Haiku',
        )
        .addChoices(...MODEL_CHOICES.map((choice) => ({ name: choice, value: choice }))),
    )
    .addBooleanOption((option) =>
      option.setName('private').setDescription('Only you see the answer (default: false)'),
    )
    .toJSON(),

  async execute(interaction, context) {
    const prompt = interaction.options.getString('prompt', true).trim();
    const choice = (interaction.options.getString('model') ?? 'auto') as ModelChoice;
    if (!MODEL_CHOICES.includes(choice))
      throw new UserError(`model must be one of ${MODEL_CHOICES.join(', ')}.`);
    if (isBlank(prompt)) throw new UserError('Ask something: the prompt is empty.');
    const isPrivate = interaction.options.getBoolean('private') ?? false;
    // Acknowledged at once: Discord allows three seconds, and a model may take longer to start.
    const deferred = await interaction.deferReply({
      withResponse: true,
      ...(isPrivate ? { flags: MessageFlags.Ephemeral } : {}),
    });
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
        choice,
        signal: context.signal,
        // A public answer can be answered again in the channel, as a reply to it.
        questionMessageId: isPrivate ? undefined : deferred.resource?.message?.id,
      },
      interactionSurface(interaction, isPrivate),
      settings,
      context,
      // Over budget or providers down: said privately, in place of the answer.
      { refuse: (text) => replyPrivately(interaction, text) },
    );
  },
};
