/**
 * The files of a drop, folders included: DataTransfer.files lists a dropped folder as one empty
 * entry, so folders are walked through webkitGetAsEntry (Chromium, Firefox and Safari all have it).
 * Each file keeps its path from the dropped folder in `relativePath`, as a webkitdirectory pick gives.
 */

/** A dropped file and its path below the drop ("my-lora/adapter_config.json"; just the name at the top). */
export interface DroppedFile {
  file: File;
  relativePath: string;
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

/** All entries of a folder: readEntries answers in batches until it returns an empty one. */
async function entriesOf(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const out: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
      reader.readEntries(resolve, reject),
    );
    if (batch.length === 0) return out;
    out.push(...batch);
  }
}

async function walk(entry: FileSystemEntry, prefix: string, out: DroppedFile[]): Promise<void> {
  const path = prefix ? `${prefix}/${entry.name}` : entry.name;
  if (entry.isFile) out.push({ file: await fileOf(entry as FileSystemFileEntry), relativePath: path });
  else if (entry.isDirectory)
    for (const child of await entriesOf(entry as FileSystemDirectoryEntry)) await walk(child, path, out);
}

export async function droppedFiles(dt: DataTransfer): Promise<DroppedFile[]> {
  // The entries must be taken while the drop event runs: the list empties once it returns.
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.() ?? null);
  if (entries.every((e) => e === null))
    return [...dt.files].map((file) => ({ file, relativePath: file.name }));
  const out: DroppedFile[] = [];
  for (const e of entries) if (e) await walk(e, '', out);
  return out;
}
