import type { Message, MessageMentionOptions } from 'discord.js';
import { MESSAGE_LIMIT, splitMessage } from './split.js';

/** Discord lets a bot edit a message about five times in five seconds: one edit per ~1.2 s stays clear. */
export const EDIT_INTERVAL_MS = 1_200;

/** The bot never pings anyone, whatever the model writes: every send and edit says so explicitly. */
export const NO_MENTIONS: MessageMentionOptions = { parse: [], repliedUser: false };

/** What shows while text is still coming: the first message's worth, marked as unfinished. */
const STREAMING_MARK = ' …';

/**
 * An answer shown as it is written: a reply to the question as soon as the first text comes, then edits
 * that coalesce the deltas, at most one per interval and one at a time (so an edit never races another or
 * piles up behind a rate limit), then the final text split across as many replies as it needs.
 */
export class LiveReply {
  private reply: Message | undefined;
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

  constructor(
    private readonly question: Message,
    private readonly editIntervalMs = EDIT_INTERVAL_MS,
  ) {}

  /** Shows that an answer is coming. */
  async start(): Promise<void> {
    if ('sendTyping' in this.question.channel) await this.question.channel.sendTyping().catch(() => {});
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

  /** The final answer and its footer lines (already prefixed), in as many messages as needed. */
  async finish(text: string, footer: readonly string[]): Promise<Message[]> {
    this.isFinished = true;
    if (this.timer) clearTimeout(this.timer);
    await this.pending;
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
    const sent: Message[] = [];
    for (const [index, piece] of pieces.entries()) {
      if (index === 0) sent.push(await this.write(piece));
      else
        sent.push(
          await (sent.at(-1) ?? this.question).reply({ content: piece, allowedMentions: NO_MENTIONS }),
        );
    }
    return sent;
  }

  /** One write at a time, at most one per interval once the reply exists; the first text goes at once. */
  private schedule(): void {
    if (this.isFinished || this.timer || this.isWriting) return;
    const wait = this.reply ? Math.max(0, this.lastEditAt + this.editIntervalMs - Date.now()) : 0;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    if (this.isFinished) return;
    const visible = this.text === '' ? this.note : streamingView(this.text);
    if (visible === '' || visible === this.shownText) return;
    this.shownText = visible;
    this.isWriting = true;
    this.pending = this.pending
      .then(() => this.write(visible))
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

  private async write(content: string): Promise<Message> {
    if (!this.reply) {
      this.reply = await this.question.reply({ content, allowedMentions: NO_MENTIONS });
      return this.reply;
    }
    return this.reply.edit({ content, allowedMentions: NO_MENTIONS });
  }
}

function streamingView(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length <= MESSAGE_LIMIT) return trimmed;
  return `${splitMessage(trimmed, MESSAGE_LIMIT - STREAMING_MARK.length)[0] ?? ''}${STREAMING_MARK}`;
}
