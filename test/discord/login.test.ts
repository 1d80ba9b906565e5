import { createServer } from 'node:net';
import { DiscordAPIError, HTTPError } from 'discord.js';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import {
  classifyDiscordFailure,
  classifyLoginFailure,
  describeLoginFailure,
} from '../../src/discord/login.js';

/** What undici (discord.js's HTTP client) throws when nothing listens at the address. */
async function connectionRefused(): Promise<unknown> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return request(`http://127.0.0.1:${port}/api/v10/gateway/bot`).then(
    () => expect.unreachable('nothing listens there'),
    (error: unknown) => error,
  );
}

/** What undici throws when the server closes the connection without answering. */
async function connectionDropped(): Promise<unknown> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    return await request(`http://127.0.0.1:${port}/`).then(
      () => expect.unreachable('the server answers nothing'),
      (error: unknown) => error,
    );
  } finally {
    server.close();
  }
}

/** What undici throws when @discordjs/rest gives up waiting (it aborts its controller after 15 s). */
async function timedOut(): Promise<unknown> {
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  try {
    return await request(`http://127.0.0.1:${port}/`, { signal: controller.signal }).then(
      () => expect.unreachable('the server answers nothing'),
      (error: unknown) => error,
    );
  } finally {
    silent.close();
  }
}

describe('classifying a failed login', () => {
  it('when the gateway closed with 4004 or 4014, then the close code decides, whatever the error says', () => {
    expect(classifyLoginFailure(new Error('Authentication failed'), 4004)).toEqual({ kind: 'token-refused' });
    expect(classifyLoginFailure(new Error('Used disallowed intents'), 4014)).toEqual({
      kind: 'intents-disallowed',
    });
  });

  it('when nothing listens at the address, then Discord is unreachable', async () => {
    expect(classifyDiscordFailure(await connectionRefused())).toEqual({
      kind: 'unreachable',
      reason: 'connection refused',
    });
  });

  it('when the connection drops, a request times out, or Discord answers 5xx, then it is worth another try', async () => {
    expect(classifyDiscordFailure(await connectionDropped())).toMatchObject({ kind: 'transient' });
    expect(classifyDiscordFailure(await timedOut())).toEqual({ kind: 'transient', reason: 'timed out' });
    const badGateway = new HTTPError(502, 'Bad Gateway', 'GET', 'http://discord.test/api/v10/gateway/bot', {
      body: undefined,
      files: undefined,
    });
    expect(classifyDiscordFailure(badGateway)).toEqual({ kind: 'transient', reason: 'HTTP 502' });
  });

  it('when the name does not resolve, then Discord is unreachable; when DNS fails for now, it is tried again', () => {
    // As node:dns reports them.
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND discord.invalid'), { code: 'ENOTFOUND' });
    const tryAgain = Object.assign(new Error('getaddrinfo EAI_AGAIN discord.com'), { code: 'EAI_AGAIN' });
    expect(classifyDiscordFailure(notFound)).toEqual({ kind: 'unreachable', reason: 'no such host' });
    expect(classifyDiscordFailure(tryAgain)).toMatchObject({ kind: 'transient' });
  });

  it('when REST answers 401, then the token was refused; another 4xx at login means something else answers there', () => {
    const requestData = { body: undefined, files: undefined };
    const url = 'http://discord.test/api/v10/gateway/bot';
    const unauthorized = new DiscordAPIError(
      { message: '401: Unauthorized', code: 0 },
      0,
      401,
      'GET',
      url,
      requestData,
    );
    const notFound = new DiscordAPIError(
      { message: '404: Not Found', code: 0 },
      0,
      404,
      'GET',
      url,
      requestData,
    );
    expect(classifyDiscordFailure(unauthorized)).toEqual({ kind: 'token-refused' });
    expect(classifyDiscordFailure(notFound)).toBeUndefined();
    expect(classifyLoginFailure(notFound)).toEqual({
      kind: 'unreachable',
      reason: `HTTP 404 for GET ${url}`,
    });
  });

  it('when the failure is anything else, then it is not classified (a bug, not an operator problem)', () => {
    expect(classifyLoginFailure(new TypeError('undefined is not a function'))).toBeUndefined();
  });

  it('when a failure is described, then it is one line that says what to do', () => {
    const lines = (['token-refused', 'intents-disallowed'] as const).map((kind) =>
      describeLoginFailure({ kind }, 'https://discord.com/api'),
    );
    lines.push(
      describeLoginFailure({ kind: 'unreachable', reason: 'no such host' }, 'https://discord.com/api'),
    );
    for (const line of lines) expect(line).not.toContain('\n');
    expect(lines).toEqual([
      expect.stringContaining('Bot → Reset Token'),
      expect.stringContaining('Bot → Privileged Gateway Intents'),
      expect.stringMatching(/^cannot reach Discord at https:\/\/discord\.com\/api \(no such host\): check/),
    ]);
  });
});
