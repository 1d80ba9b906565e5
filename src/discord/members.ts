import {
  type APIInteractionDataResolvedGuildMember,
  type APIInteractionGuildMember,
  GuildMember,
} from 'discord.js';

/**
 * A member's role ids, from the message or interaction payload that brought them (no REST call, and no
 * privileged members intent): what role budgets are looked up by. The @everyone role (the server's own
 * id) is every member's, so it is left out.
 */
export function roleIdsOf(
  member: GuildMember | APIInteractionGuildMember | APIInteractionDataResolvedGuildMember | null | undefined,
  guildId: string | null,
): string[] {
  if (!member || guildId === null) return [];
  const ids = member instanceof GuildMember ? [...member.roles.cache.keys()] : member.roles;
  return ids.filter((id) => id !== guildId);
}
