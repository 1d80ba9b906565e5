import {
  type ActionRowBuilder,
  type Message,
  type MessageActionRowComponentBuilder,
  type MessageMentionOptions,
  MessageFlags,
  type RepliableInteraction,
} from 'discord.js';
import { redactSecrets } from '../log.js';
import type { RateLimitWatch } from './rate-limits.js';
import { MESSAGE_LIMIT, splitMessage } from './split.js';

/** Discord lets a bot edit a message about five times in five seconds: one edit per ~1.2 s stays clear. */
export const EDIT_INTERVAL_MS = 1_200;

/** The bot never pings anyone, whatever the model writes: every send and edit says so explicitly. */
export const NO_MENTIONS: MessageMentionOptions = { parse: [], repliedUser: false };

export type Components = ActionRowBuilder<MessageActionRowComponentBuilder>[];

/** A message of an answer: its text and, on the last one, its buttons. */
export interface AnswerPiece {
  content: string;
  components?: Components;
}

/** Where an answer goes: a reply to a chat message, or an interaction's own reply. */
export interface ReplySurface {
  /** Which of discord.js's rate limits its edits fall under (see {@link RateLimitWatch}). */
  readonly limitKey: string;
  /** Shows that an answer is coming. */
  typing(): Promise<void>;
  /** Sends the answer's first message, or edits it once sent. */
  write(piece: AnswerPiece): Promise<Message>;
  /** Sends a further message of the answer after `previous`. */
  continue(previous: Message, piece: AnswerPiece): Promise<Message>;
  /**
   * Lines for the answer's footer about where it went, e.g. in the channel rather than a thread, and
   * why. Read when the answer is finished, and again after its first message is sent (which may move it).
   */
  notes?(): readonly string[];
}

/** The answer to a chat message: a reply to it, edited as text comes, continued in replies. */
export function messageSurface(question: Message): ReplySurface {
  let reply: Message | undefined;
  return {
    limitKey: question.channelId,
    async typing() {
      if ('sendTyping' in question.channel) await question.channel.sendTyping().catch(() => {});
    },
    async write(piece) {
      const options = { ...piece, allowedMentions: NO_MENTIONS };
      if (reply) return reply.edit(options);
      reply = await question.reply(options);
      return reply;
    },
    continue: (previous, piece) => previous.reply({ ...piece, allowedMentions: NO_MENTIONS }),
  };
}

/**
 * The answer to a command: the interaction's reply (deferred already, so Discord shows "thinking…"),
 * edited as text comes, continued in follow-ups with the same visibility.
 */
export function interactionSurface(interaction: RepliableInteraction, isPrivate: boolean): ReplySurface {
  return {
    limitKey: `${interaction.applicationId}/${interaction.token}`,
    typing: () => Promise.resolve(),
    write: (piece) => interaction.editReply({ ...piece, allowedMentions: NO_MENTIONS }),
    continue: (_previous, piece) =>
      interaction.followUp({
        ...piece,
        allowedMentions: NO_MENTIONS,
        ...(isPrivate ? { flags: MessageFlags.Ephemeral } : {}),
      }),
  };
}

/** What shows while text is still coming: the first message's worth, marked as unfinished. */
const STREAMING_MARK = ' …';

/**
 * An answer shown as it is written: a reply to the question as soon as the first text comes, then edits
 * that coalesce the deltas, at most one per interval and one at a time (so an edit never races another or
 * piles up behind a rate limit), then the final text split across as many replies as it needs.
 */
export class LiveReply {
  private text = '';
  /** Shown instead of the text while there is none (e.g. "refining with Claude Haiku…"). */
  private note = '';
  private shownText = '';
  private pending: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** A write is on its way: newer text waits for it, then goes in one write (never a queue of them). */
  private isWriting = false;
  private lastEditAt = 0;
  private isFinished = false;

  /** The first message has been sent: later writes are edits, paced by the interval. */
  private hasWritten = false;

  constructor(
    private readonly surface: ReplySurface,
    private readonly editIntervalMs = EDIT_INTERVAL_MS,
    /** While discord.js reports the surface's route rate-limited, interim edits wait. */
    private readonly limits?: Pick<RateLimitWatch, 'waitMs'>,
  ) {}

  /** Shows that an answer is coming. */
  start(): Promise<void> {
    return this.surface.typing();
  }

  append(delta: string): void {
    this.text += delta;
    this.schedule();
  }

  /** Replaces what is shown (the draft) with a note, e.g. "refining with Claude Haiku…". */
  replace(note: string): void {
    this.text = '';
    this.note = note;
    this.schedule();
  }

  /**
   * The final answer and its footer lines (already prefixed), in as many messages as needed; the last
   * one carries the components (e.g. the Escalate button).
   */
  async finish(text: string, footer: readonly string[], components?: Components): Promise<Message[]> {
    this.isFinished = true;
    if (this.timer) clearTimeout(this.timer);
    await this.pending;
    const notes = () => (this.surface.notes?.() ?? []).map((note) => `-# ${note}`);
    const noteCount = notes().length;
    let pieces = answerPieces(text, [...footer, ...notes()], components);
    if (pieces[0] === undefined) return [];
    let first = await this.write(pieces[0]);
    if (notes().length !== noteCount) {
      // Sending moved the answer (a thread it could not be written in): the note goes under it too.
      pieces = answerPieces(text, [...footer, ...notes()], components);
      if (pieces[0] !== undefined) first = await this.write(pieces[0]);
    }
    const sent = [first];
    for (const piece of pieces.slice(1)) {
      sent.push(await this.surface.continue(sent[sent.length - 1] ?? first, withoutSecrets(piece)));
    }
    return sent;
  }

  /**
   * One write at a time; once the reply exists, at most one per interval and none while its route is
   * rate-limited. The first text goes at once.
   */
  private schedule(): void {
    if (this.isFinished || this.timer || this.isWriting) return;
    const wait = this.hasWritten
      ? Math.max(this.lastEditAt + this.editIntervalMs - Date.now(), this.limitedMs())
      : 0;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.flush();
      },
      Math.max(0, wait),
    );
  }

  private limitedMs(): number {
    return this.limits?.waitMs(this.surface.limitKey) ?? 0;
  }

  private flush(): void {
    if (this.isFinished) return;
    // A limit reported since the timer was set (another answer in the channel hit it): wait it out too.
    if (this.hasWritten && this.limitedMs() > 0) {
      this.schedule();
      return;
    }
    const visible = this.text === '' ? this.note : streamingView(this.text);
    if (visible === '' || visible === this.shownText) return;
    this.shownText = visible;
    this.isWriting = true;
    this.pending = this.pending
      .then(() => this.write({ content: visible }))
      .then(
        () => undefined,
        // A failed interim edit is not fatal: the final edit carries the whole answer.
        () => undefined,
      )
      .then(() => {
        this.isWriting = false;
        this.lastEditAt = Date.now();
        // Text that came while this write was on its way goes in the next one.
        this.schedule();
      });
  }

  private async write(piece: AnswerPiece): Promise<Message> {
    const message = await this.surface.write(withoutSecrets(piece));
    this.hasWritten = true;
    return message;
  }
}

/**
 * Whatever a model writes, a secret-shaped string (an API key, a bot token, a webhook URL) is never
 * posted: a model can be talked into echoing one it was shown, and a channel is no place for it.
 */
function withoutSecrets(piece: AnswerPiece): AnswerPiece {
  return { ...piece, content: redactSecrets(piece.content) };
}

/**
 * The final text and its footer lines as messages: the footer under the last piece of text when it fits,
 * else a message of its own; the last message carries the components.
 */
function answerPieces(text: string, footer: readonly string[], components?: Components): AnswerPiece[] {
  const footerText = footer.join('\n');
  const pieces = splitMessage(text);
  const last = pieces.at(-1);
  if (footerText !== '') {
    if (last !== undefined && last.length + 1 + footerText.length <= MESSAGE_LIMIT) {
      pieces[pieces.length - 1] = `${last}\n${footerText}`;
    } else {
      pieces.push(footerText);
    }
  }
  return pieces.map((content, index) =>
    index === pieces.length - 1 && components ? { content, components } : { content },
  );
}

function streamingView(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length <= MESSAGE_LIMIT) return trimmed;
  return `${splitMessage(trimmed, MESSAGE_LIMIT - STREAMING_MARK.length)[0] ?? ''}${STREAMING_MARK}`;
}
