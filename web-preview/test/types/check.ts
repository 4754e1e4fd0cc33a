// Contract test of the hand-written TypeScript declarations of ttn-telemetry-wasm: this file
// type-checks against the generated package (web-preview/pkg) with `tsc --noEmit` in strict
// mode. The @ts-expect-error lines fail the check if a declaration loosens (e.g. to `any`).
import init, {
  buildReport,
  buildReportView,
  computeUid,
  fields,
  sha256Hex,
  version,
  type FieldDoc,
  type ReportField,
  type ReportView,
} from '../../pkg/ttn_telemetry_wasm.js';

export async function preview(inputsJson: string, elements: string[]): Promise<string> {
  await init();
  const bytes: Uint8Array = buildReport(inputsJson);
  const digest: string = sha256Hex(bytes);
  const uid: string = computeUid(elements);
  const rows: FieldDoc[] = fields();
  const paths: string[] = rows.map((r) => `${r.path}: ${r.meaning}`);
  const v: string = version();
  const view: ReportView = buildReportView(inputsJson);
  const same: boolean = view.bytes.length === bytes.length && view.uid.length > 0;
  const cells: string[] = view.fields.map((f: ReportField) => `${f.path} ${f.text} ${f.start}-${f.end} ${f.doc} ${f.meaning}`);

  // @ts-expect-error the inputs are JSON text, not an object (u64 counts need the text)
  buildReport({ uid_elements: elements });
  // @ts-expect-error the report is bytes, not a string
  const notText: string = buildReport(inputsJson);
  // @ts-expect-error elements are strings
  computeUid([1, 2]);
  // @ts-expect-error the digest is of bytes
  sha256Hex('text');
  // @ts-expect-error field rows are read-only
  rows[0].path = 'x';
  // @ts-expect-error field rows have no other members
  rows[0].value;
  // @ts-expect-error span offsets are numbers
  const offset: string = view.fields[0].start;
  // @ts-expect-error the view is read-only
  view.uid = 'x';

  return [digest, uid, v, notText, offset, String(same), ...cells, ...paths].join('\n');
}
