// CDK-style definition substitutions (`DefinitionBody.fromFile` + `definitionSubstitutions`): each `${Name}` in the
// ASL text is replaced by its value, as raw text, before parsing. A placeholder without a value and a value without
// a placeholder are both errors, so a renamed key cannot slip through locally and fail only on AWS.

export class DefinitionSubstitutionError extends Error {
  override readonly name = 'DefinitionSubstitutionError';
}

const PLACEHOLDER = /\$\{([^}]*)\}/g;

export function substituteDefinition(
  definition: string,
  substitutions: Readonly<Record<string, string>> = {},
): string {
  const missing = new Set<string>();
  const used = new Set<string>();
  const text = definition.replace(PLACEHOLDER, (placeholder, key: string) => {
    const value = Object.hasOwn(substitutions, key) ? substitutions[key] : undefined;
    if (value === undefined) {
      missing.add(key);
      return placeholder;
    }
    used.add(key);
    return value;
  });
  const unused = Object.keys(substitutions).filter((key) => !used.has(key));
  const problems: string[] = [];
  if (missing.size > 0) {
    problems.push(`no value for ${[...missing].map((key) => `\${${key}}`).join(', ')}`);
  }
  if (unused.length > 0) {
    problems.push(`substitution(s) ${unused.join(', ')} match no \${...} in the definition`);
  }
  if (problems.length > 0)
    throw new DefinitionSubstitutionError(`definition substitutions: ${problems.join('; ')}`);
  return text;
}
