/** Outcome of reading a server name from the client's first bytes (TLS SNI or HTTP Host). */
export const NAME_RESULT = {
  /** Not enough bytes yet: hold and call again with more. */
  NEED_MORE: 0,
  /** A name was read (NameOut.name). */
  FOUND: 1,
  /** The protocol was recognized and complete, but carries no name (ClientHello without SNI, HTTP/1.0 without Host). */
  ABSENT: 2,
  /** The bytes are not this protocol. */
  NOT_THIS_PROTOCOL: 3,
  /** The protocol was recognized but its framing is broken or ambiguous (two Host headers, two SNI names...). */
  MALFORMED: 4,
  /** The message would not fit the byte budget. */
  TOO_LARGE: 5,
} as const;
export type NameResult = (typeof NAME_RESULT)[keyof typeof NAME_RESULT];

export const NAME_RESULT_NAMES = ['need_more', 'found', 'absent', 'not_this_protocol', 'malformed', 'too_large'] as const;
