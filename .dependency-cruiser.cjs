/**
 * Enforces the layer order of DESIGN.md: a module may import from its own layer and the
 * layers below it, never from a layer above; and no import cycles anywhere.
 * Listed bottom to top. Layers on one line are siblings and may not import each other.
 */
const layers = [
  ['errors.ts'],
  ['util'],
  ['storage'],
  ['codec'],
  ['persistent'],
  ['connection'],
  ['btree'],
  ['documents', 'namespaces'],
  ['cli', 'server'],
  ['index.ts'],
];

const pathOf = (name) =>
  name.endsWith('.ts') ? `^src/${name.replace('.', '[.]')}$` : `^src/${name}/`;

const forbidden = [
  {
    name: 'no-circular',
    severity: 'error',
    comment: 'Import cycles make load order fragile and hide a missing layer.',
    from: {},
    to: { circular: true },
  },
  {
    name: 'no-orphans',
    severity: 'error',
    comment: 'A module that nothing imports is dead code (index.ts and the CLI entry are roots).',
    from: { orphan: true, pathNot: ['^src/index[.]ts$', '^src/cli/main[.]ts$', '[.]d[.]ts$'] },
    to: {},
  },
];

layers.forEach((group, rank) => {
  const above = layers.slice(rank + 1).flat();
  for (const name of group) {
    const siblings = group.filter((other) => other !== name);
    const targets = [...above, ...siblings].map(pathOf);
    if (targets.length === 0) continue;
    forbidden.push({
      name: `layer-${name.replace('.ts', '')}`,
      severity: 'error',
      comment: `${name} may only import from the layers below it (DESIGN.md, Layers).`,
      from: { path: pathOf(name) },
      to: { path: targets },
    });
  }
});

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.build.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js'],
    },
  },
};
