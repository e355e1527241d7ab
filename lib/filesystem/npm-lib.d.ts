// Types for the parts of @modelcontextprotocol/server-filesystem (which ships no .d.ts) that the
// built-in filesystem reuses: only functions that take explicit paths and read no global state.
declare module "@modelcontextprotocol/server-filesystem/dist/lib.js" {
  export interface FileInfo {
    size: number;
    created: Date;
    modified: Date;
    accessed: Date;
    isDirectory: boolean;
    isFile: boolean;
    permissions: string;
  }
  export function formatSize(bytes: number): string;
  export function getFileStats(filePath: string): Promise<FileInfo>;
  export function moveFile(sourcePath: string, destinationPath: string): Promise<void>;
  export function applyFileEdits(filePath: string, edits: { oldText: string; newText: string }[], dryRun?: boolean): Promise<string>;
  export function tailFile(filePath: string, numLines: number): Promise<string>;
  export function headFile(filePath: string, numLines: number): Promise<string>;
}

declare module "@modelcontextprotocol/server-filesystem/dist/path-utils.js" {
  export function normalizePath(p: string): string;
  export function expandHome(filepath: string): string;
}

declare module "@modelcontextprotocol/server-filesystem/dist/path-validation.js" {
  export function isPathWithinAllowedDirectories(absolutePath: string, allowedDirectories: string[]): boolean;
}
