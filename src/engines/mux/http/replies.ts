/**
 * The only HTTP responses switchboard writes itself (DESIGN §5, `http`): a refused request (400/501/505, from the request
 * framer's status) and a failed upstream (502/504). Everything else a client receives is the upstream's bytes, unchanged.
 *
 *   HTTP/1.1 <code> <reason>\r\ncontent-type: text/plain\r\ncontent-length: N\r\n[connection: close\r\n]\r\n<body>
 *
 * The body names switchboard, so that a person reading it knows the answer came from the gateway and not the device.
 */

/** RFC 9110 §15 reason phrases of the statuses we generate. */
const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

export type GeneratedStatus = 400 | 501 | 502 | 504 | 505;

export interface GeneratedResponseOptions {
  /** Add `connection: close`: the client is closed after this response. */
  close: boolean;
  /** It answers a HEAD request: headers only (RFC 9110 §9.3.2), content-length still says what a GET would carry. */
  head: boolean;
  /** One short sentence for people, after "switchboard: ". */
  detail: string;
}

export function generatedResponse(status: GeneratedStatus, options: GeneratedResponseOptions): Buffer {
  const body = Buffer.from(`switchboard: ${options.detail}\n`, 'latin1');
  const head =
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
    'content-type: text/plain\r\n' +
    `content-length: ${body.length}\r\n` +
    (options.close ? 'connection: close\r\n' : '') +
    '\r\n';
  return options.head ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** The statuses the request framer assigns (Http1FrameError.status); anything unexpected is answered as 400. */
export function requestErrorStatus(status: number): GeneratedStatus {
  return status === 501 || status === 505 ? status : 400;
}

/** Texts of the failures, one place so that README and tests can quote them. */
export const DETAIL = {
  unavailable: 'the upstream is unreachable',
  upstreamClosed: 'the upstream closed the connection before answering',
  badResponse: 'the upstream sent a response that cannot be framed',
  timeout: 'the upstream did not answer in time',
  deadline: 'the request waited too long for the upstream',
} as const;
