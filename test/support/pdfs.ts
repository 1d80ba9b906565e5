import { deflateSync } from 'node:zlib';

/**
 * PDFs built in test code, small and whole (a catalog, a page tree, pages with text, a font, and a
 * cross-reference a reader can follow): a plain one, and two crafted to pass for one page to anything
 * that looks for `/Type /Page` in the bytes, while any real PDF reader (and Anthropic's) finds every page.
 */

type Body = string | Buffer;

/** One page's text, drawn in Helvetica. */
const pageContent = (number: number) => `BT /F1 24 Tf 72 720 Td (Page ${number}) Tj ET`;

const stream = (dictionary: string, data: Buffer) =>
  Buffer.concat([
    Buffer.from(`<< ${dictionary} /Length ${data.length} >>\nstream\n`, 'latin1'),
    data,
    Buffer.from('\nendstream', 'latin1'),
  ]);

/**
 * The objects every test PDF has, numbered: 1 the catalog, 2 the page tree, 3 the font, then per page its
 * dictionary and its content stream. `pageType` is how a page dictionary spells its /Type.
 */
function pdfObjects(pageCount: number, pageType: string) {
  const pageNumber = (index: number) => 4 + 2 * index;
  const kids = Array.from({ length: pageCount }, (_, index) => `${pageNumber(index)} 0 R`).join(' ');
  const shared: [number, Body][] = [
    [1, '<< /Type /Catalog /Pages 2 0 R >>'],
    [2, `<< /Type /Pages /Kids [${kids}] /Count ${pageCount} >>`],
    [3, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'],
  ];
  const pages: [number, Body][] = [];
  const contents: [number, Body][] = [];
  for (let index = 0; index < pageCount; index += 1) {
    const number = pageNumber(index);
    pages.push([
      number,
      `<< /Type ${pageType} /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${number + 1} 0 R >>`,
    ]);
    contents.push([number + 1, stream('', Buffer.from(pageContent(index + 1), 'latin1'))]);
  }
  return { shared, pages, contents, size: 4 + 2 * pageCount };
}

/** The header, then each object at an offset kept for the cross-reference. */
function writeObjects(version: string, objects: readonly [number, Body][]) {
  // The binary comment line tells transfer tools the file is binary, as PDF writers do.
  const parts: Buffer[] = [Buffer.from(`%PDF-${version}\n%\xe2\xe3\xcf\xd3\n`, 'latin1')];
  let length = parts[0]?.length ?? 0;
  const offsets = new Map<number, number>();
  for (const [number, body] of objects) {
    offsets.set(number, length);
    const object = Buffer.concat([
      Buffer.from(`${number} 0 obj\n`, 'latin1'),
      typeof body === 'string' ? Buffer.from(body, 'latin1') : body,
      Buffer.from('\nendobj\n', 'latin1'),
    ]);
    parts.push(object);
    length += object.length;
  }
  return { parts, length, offsets };
}

/** A PDF 1.4 file with a classic cross-reference table. */
function classicPdf(pageCount: number, pageType: string): Buffer {
  const { shared, pages, contents, size } = pdfObjects(pageCount, pageType);
  const { parts, length, offsets } = writeObjects('1.4', [...shared, ...pages, ...contents]);
  const rows = Array.from({ length: size - 1 }, (_, index) => {
    const offset = offsets.get(index + 1) ?? 0;
    return `${String(offset).padStart(10, '0')} 00000 n \n`;
  });
  const xref = `xref\n0 ${size}\n0000000000 65535 f \n${rows.join('')}`;
  const trailer = `trailer\n<< /Size ${size} /Root 1 0 R >>\nstartxref\n${length}\n%%EOF\n`;
  return Buffer.concat([...parts, Buffer.from(xref + trailer, 'latin1')]);
}

/** A normal PDF: `pageCount` pages, each a `/Type /Page` dictionary in plain sight. */
export function plainPdf(pageCount: number): Buffer {
  return classicPdf(pageCount, '/Page');
}

/**
 * Page dictionaries that spell their type `/P#61ge`: `#61` is the escape of `a`, legal in any name since
 * PDF 1.2 (ISO 32000-1, 7.3.5), so a reader sees `/Page`; a byte scan sees no page at all.
 */
export function escapedNamePdf(pageCount: number): Buffer {
  return classicPdf(pageCount, '/P#61ge');
}

/** Bytes per row of the PNG predictor in the crafted object stream. */
const PREDICTOR_COLUMNS = 24;

/**
 * The PNG "Up" predictor (type 2) as PDF's FlateDecode applies it with /Predictor 12: each row of
 * `columns` bytes is stored as its difference from the row above, after a byte naming the filter. The
 * last row is padded with spaces, which a parser reads as whitespace after the last object.
 */
export function pngUpPredicted(data: Buffer, columns: number): Buffer {
  const rows = Math.ceil(data.length / columns);
  const padded = Buffer.alloc(rows * columns, 0x20);
  data.copy(padded);
  const encoded = Buffer.alloc(rows * (columns + 1));
  for (let row = 0; row < rows; row += 1) {
    encoded[row * (columns + 1)] = 2;
    for (let column = 0; column < columns; column += 1) {
      const above = row === 0 ? 0 : (padded[(row - 1) * columns + column] ?? 0);
      const value = padded[row * columns + column] ?? 0;
      encoded[row * (columns + 1) + 1 + column] = (value - above) & 0xff;
    }
  }
  return encoded;
}

/**
 * A PDF 1.5 file whose page dictionaries (and page tree and font) sit in one compressed object stream
 * (/Type /ObjStm), FlateDecode with a PNG predictor (/DecodeParms << /Predictor 12 /Columns 24 >>), as
 * modern writers do. Its cross-reference is a stream too, as object streams require. Inflated without the
 * predictor the stream is row-by-row differences: no `/Type /Page` appears in it either.
 */
export function objectStreamPdf(pageCount: number): Buffer {
  const { shared, pages, contents, size: objectCount } = pdfObjects(pageCount, '/Page');
  const [catalog, ...inStream] = shared;
  const compressed = [...inStream, ...pages] as [number, string][];
  // An object stream begins with "number offset" pairs, then the objects, from /First on.
  let offset = 0;
  const pairs = compressed.map(([number, body]) => {
    const pair = `${number} ${offset}`;
    offset += body.length + 1;
    return pair;
  });
  const header = `${pairs.join(' ')}\n`;
  const objectsText = compressed.map(([, body]) => `${body}\n`).join('');
  const encoded = deflateSync(pngUpPredicted(Buffer.from(header + objectsText, 'latin1'), PREDICTOR_COLUMNS));
  const objectStreamNumber = objectCount;
  const objectStream = stream(
    `/Type /ObjStm /N ${compressed.length} /First ${header.length} /Filter /FlateDecode ` +
      `/DecodeParms << /Predictor 12 /Columns ${PREDICTOR_COLUMNS} >>`,
    encoded,
  );
  const plain: [number, Body][] = [
    ...(catalog ? [catalog] : []),
    ...contents,
    [objectStreamNumber, objectStream],
  ];
  const { parts, length, offsets } = writeObjects('1.5', plain);

  // The cross-reference stream: per object, type (0 free, 1 at an offset, 2 in an object stream) and two fields.
  const xrefNumber = objectStreamNumber + 1;
  const size = xrefNumber + 1;
  const entries = Buffer.alloc(size * 7);
  const entry = (number: number, type: number, field2: number, field3: number) => {
    entries.writeUInt8(type, number * 7);
    entries.writeUInt32BE(field2, number * 7 + 1);
    entries.writeUInt16BE(field3, number * 7 + 5);
  };
  entry(0, 0, 0, 0xffff);
  for (const [number] of plain) entry(number, 1, offsets.get(number) ?? 0, 0);
  compressed.forEach(([number], index) => entry(number, 2, objectStreamNumber, index));
  entry(xrefNumber, 1, length, 0);
  const xref = Buffer.concat([
    Buffer.from(`${xrefNumber} 0 obj\n`, 'latin1'),
    stream(`/Type /XRef /Size ${size} /W [1 4 2] /Root 1 0 R`, entries),
    Buffer.from(`\nendobj\nstartxref\n${length}\n%%EOF\n`, 'latin1'),
  ]);
  return Buffer.concat([...parts, xref]);
}

/** PDF bytes for tests to check what reaches a provider against: their base64, as both vendors take it. */
export const base64Of = (pdf: Uint8Array) =>
  Buffer.from(pdf.buffer, pdf.byteOffset, pdf.byteLength).toString('base64');
