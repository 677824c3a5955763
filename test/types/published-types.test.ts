/**
 * The published types, as users get them: the built declarations (dist/*.d.ts, made with
 * stripInternal) through package.json's exports. The other tests compile against them with
 * skipLibCheck, which hid declarations that did not compile; here a program of a user's
 * (consumer/) is checked with the strictest common settings and without it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// Run from build/test/types/; the sources and the package are at the root.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe('published types', () => {
  it('a user program compiles against dist, every declaration file does, and misuse does not', () => {
    // consumer/tsconfig.json includes every dist/**/*.d.ts, so unreachable ones are checked
    // too; consumer/mistakes.ts and commonjs.cts hold misuse marked @ts-expect-error, which
    // fails the check if it compiles.
    const result = spawnSync(
      process.execPath,
      [
        createRequire(import.meta.url).resolve('typescript/bin/tsc'),
        '-p',
        join(root, 'test', 'types', 'consumer', 'tsconfig.json'),
        '--pretty',
        'false',
      ],
      { cwd: root, encoding: 'utf8' },
    );
    assert.equal(result.status, 0, `tsc reported:\n${result.stdout}${result.stderr}`);
  });

  it('the package entry exports at run time exactly the values its declarations name', async () => {
    const entry = join(root, 'dist', 'index.d.ts');
    const program = ts.createProgram([entry], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
      noEmit: true,
    });
    const checker = program.getTypeChecker();
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
    const declared = checker
      .getExportsOfModule(moduleSymbol)
      .filter((symbol) => {
        const specifier = symbol.declarations?.[0];
        // `export { type X }` and `export type { X }` name no value, even for a class.
        if (
          specifier !== undefined &&
          ts.isExportSpecifier(specifier) &&
          (specifier.isTypeOnly || specifier.parent.parent.isTypeOnly)
        ) {
          return false;
        }
        const target =
          (symbol.flags & ts.SymbolFlags.Alias) !== 0 ? checker.getAliasedSymbol(symbol) : symbol;
        return (target.flags & ts.SymbolFlags.Value) !== 0;
      })
      .map((symbol) => symbol.name)
      .sort();
    const runtime = Object.keys(await import('trove')).sort();
    // An @internal function exported from the entry is in the package but not in its types.
    assert.deepEqual(runtime, declared);
  });
});
