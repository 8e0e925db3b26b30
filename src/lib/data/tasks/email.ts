/**
 * Crude, dependency-free cleaning of raw RFC 822 mail (the SpamAssassin corpus) into the text a
 * classifier sees: the Subject, the sender's domain and the readable body. Multipart mail keeps its
 * text/plain parts (text/html ones when there is no plain part); quoted-printable and base64 text
 * parts are decoded; HTML loses its tags, comments, styles and scripts; whitespace is collapsed.
 * Not a MIME library: odd mail degrades to roughly readable text, never to an exception.
 */

export interface CleanEmail {
  subject: string;
  /** Domain of the From address, lower-cased; '' when there is none. */
  fromDomain: string;
  body: string;
}

type Headers = Map<string, string>;

/** Splits a message (or MIME part) into unfolded headers (lower-cased names, first value wins) and body. */
export function parseHeaders(raw: string): { headers: Headers; body: string } {
  const text = raw.replace(/\r\n?/g, '\n');
  const cut = text.indexOf('\n\n');
  const head = cut < 0 ? text : text.slice(0, cut);
  const body = cut < 0 ? '' : text.slice(cut + 2);
  const headers: Headers = new Map();
  let name = '';
  for (const line of head.split('\n')) {
    if (/^[ \t]/.test(line) && name) {
      headers.set(name, `${headers.get(name) ?? ''} ${line.trim()}`);
      continue;
    }
    const m = /^([!-9;-~]+):[ \t]*(.*)$/.exec(line); // field name: printable ASCII except ':'
    if (!m) {
      name = ''; // the mbox "From sender date" line, or junk
      continue;
    }
    name = m[1]!.toLowerCase();
    if (headers.has(name))
      name = ''; // keep the first value; ignore continuations of repeats
    else headers.set(name, m[2]!);
  }
  return { headers, body };
}

/** Windows-1252's characters for bytes 0x80-0x9F (undefined ones stay as they are). */
const CP1252_C1 =
  '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';

/**
 * Bytes (as a binary string, one char per byte) -> text: UTF-8 when the charset says so, else
 * Latin-1 read as browsers do, as Windows-1252 (curly quotes and the euro sign live in 0x80-0x9F).
 */
function decodeBytes(binary: string, charset: string): string {
  if (!/^utf-?8$/i.test(charset.trim())) {
    return binary.replace(/[\x80-\x9f]/g, (c) => CP1252_C1[c.charCodeAt(0) - 0x80] ?? c);
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i) & 0xff;
  return new TextDecoder('utf-8').decode(bytes);
}

/** Quoted-printable -> binary string (soft line breaks removed, =XX decoded). */
export function decodeQuotedPrintable(s: string): string {
  return s
    .replace(/=[ \t]*\n/g, '')
    .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function decodeBase64(s: string): string {
  const clean = s.replace(/[^A-Za-z0-9+/=]/g, '');
  try {
    return atob(clean.slice(0, clean.length - (clean.length % 4)));
  } catch {
    return '';
  }
}

/** RFC 2047 encoded words (`=?charset?Q|B?text?=`) in a header value -> text. */
export function decodeEncodedWords(value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, '$1$2') // whitespace between adjacent encoded words is not text
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_, charset: string, enc: string, text: string) => {
      const binary =
        enc.toUpperCase() === 'B' ? decodeBase64(text) : decodeQuotedPrintable(text.replace(/_/g, ' '));
      return decodeBytes(binary, charset);
    });
}

/** HTML 4's Latin-1 entity names, for code points 160-255 in order. */
const LATIN1_ENTITIES = (
  'nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 ' +
  'acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml ' +
  'Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde ' +
  'Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ' +
  'ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide ' +
  'oslash ugrave uacute ucirc uuml yacute thorn yuml'
).split(' ');

const ENTITIES: Readonly<Record<string, string>> = {
  ...Object.fromEntries(LATIN1_ENTITIES.map((name, i) => [name, String.fromCharCode(160 + i)])),
  nbsp: ' ',
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  trade: '\u2122',
  hellip: '\u2026',
  mdash: '\u2014',
  ndash: '\u2013',
  lsquo: '\u2018',
  rsquo: '\u2019',
  ldquo: '\u201c',
  rdquo: '\u201d',
  bull: '\u2022',
  euro: '\u20ac',
};

/** Named (HTML 4 Latin-1 and a few common others) and numeric character references -> text. */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z][a-z0-9]*);?/gi, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : ' ';
    }
    return ENTITIES[ref] ?? ENTITIES[ref.toLowerCase()] ?? whole;
  });
}

/** HTML -> text, crudely: drop comments, head, style and script, turn every tag into a space. */
export function stripHtml(html: string): string {
  return decodeEntities(
    html
      .replace(/<!--[\s\S]*?-->/g, ' ')
      .replace(/<(head|style|script|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<\/?[a-z!][^>]*>/gi, ' '),
  );
}

function param(value: string, key: string): string {
  const m = new RegExp(`${key}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value);
  return m ? (m[1] ?? m[2] ?? '') : '';
}

const LOOKS_LIKE_HTML = /<(html|body|table|font|div|p|br|a\s)\b/i;

/** The readable text of a message or part; nested multiparts are searched depth first. */
function partText(headers: Headers, body: string, depth: number): { plain: string[]; html: string[] } {
  const contentType = headers.get('content-type') ?? 'text/plain';
  const type = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  const out = { plain: [] as string[], html: [] as string[] };
  if (type.startsWith('multipart/')) {
    const boundary = param(contentType, 'boundary');
    if (!boundary || depth > 5) return out;
    const parts = body.split(`--${boundary}`).slice(1); // text before the first boundary is a preamble
    for (const part of parts) {
      if (part.startsWith('--')) break; // closing boundary
      const sub = parseHeaders(part.replace(/^[ \t]*\n/, ''));
      const got = partText(sub.headers, sub.body, depth + 1);
      out.plain.push(...got.plain);
      out.html.push(...got.html);
    }
    return out;
  }
  if (type !== '' && !type.startsWith('text/') && type !== 'message/rfc822') return out; // attachments
  const disposition = headers.get('content-disposition') ?? '';
  if (depth > 0 && /^\s*attachment/i.test(disposition) && !type.startsWith('text/plain')) return out;
  const encoding = (headers.get('content-transfer-encoding') ?? '').trim().toLowerCase();
  let text = body;
  if (encoding === 'quoted-printable')
    text = decodeBytes(decodeQuotedPrintable(body), param(contentType, 'charset'));
  else if (encoding === 'base64') text = decodeBytes(decodeBase64(body), param(contentType, 'charset'));
  if (type === 'text/html' || LOOKS_LIKE_HTML.test(text)) out.html.push(stripHtml(text));
  else out.plain.push(text);
  return out;
}

/**
 * Collapses runs of whitespace and control characters to single spaces. U+FFFD is dropped: the
 * package decoded every file as UTF-8, so each byte of a Latin-1 letter (the "c" of "seguranca")
 * became one, and nothing of the letter is left to recover.
 */
export function collapseWhitespace(s: string): string {
  return s
    .replace(/\ufffd/g, '')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g, ' ') // eslint-disable-line no-control-regex
    .replace(/\s+/g, ' ')
    .trim();
}

export function cleanEmail(raw: string): CleanEmail {
  const { headers, body } = parseHeaders(raw);
  const subject = collapseWhitespace(decodeEncodedWords(headers.get('subject') ?? ''));
  const from = headers.get('from') ?? '';
  const domain = /@([A-Za-z0-9.-]+[A-Za-z0-9])/.exec(from)?.[1]?.toLowerCase() ?? '';
  const { plain, html } = partText(headers, body, 0);
  const chosen = plain.some((p) => p.trim() !== '') ? plain : html;
  return { subject, fromDomain: domain, body: collapseWhitespace(chosen.join(' ')) };
}

/** Cuts text to at most `max` characters, at a word boundary when one is near. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.lastIndexOf(' ', max);
  return (cut > max * 0.8 ? text.slice(0, cut) : text.slice(0, max)).trimEnd();
}

/** The example text: Subject and sender domain on their own lines, then the body. */
export function emailExampleText(mail: CleanEmail, max: number): string {
  return truncate(`Subject: ${mail.subject}\nFrom: ${mail.fromDomain}\n${mail.body}`, max);
}
