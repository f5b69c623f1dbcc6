// Builds DynamoDB update expressions from nested paths, so callers never hand-write placeholders.

export type Path = readonly string[];

export interface UpdateSpec {
  readonly set?: ReadonlyArray<readonly [Path, unknown]>;
  /** Numeric increments on (possibly nested) paths, starting from 0 when absent. */
  readonly increment?: ReadonlyArray<readonly [Path, number]>;
  readonly remove?: readonly Path[];
  readonly addToSet?: ReadonlyArray<readonly [Path, ReadonlySet<string>]>;
  readonly deleteFromSet?: ReadonlyArray<readonly [Path, ReadonlySet<string>]>;
}

export class ExpressionBuilder {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private readonly nameIds = new Map<string, string>();
  private valueCount = 0;

  name(segment: string): string {
    let id = this.nameIds.get(segment);
    if (!id) {
      id = `#n${this.nameIds.size}`;
      this.nameIds.set(segment, id);
      this.names[id] = segment;
    }
    return id;
  }

  path(path: Path): string {
    return path.map((s) => this.name(s)).join('.');
  }

  value(v: unknown): string {
    const id = `:v${this.valueCount++}`;
    this.values[id] = v;
    return id;
  }

  update(spec: UpdateSpec): string {
    const sets = (spec.set ?? []).map(([p, v]) => `${this.path(p)} = ${this.value(v)}`);
    for (const [p, n] of spec.increment ?? []) {
      const ref = this.path(p);
      sets.push(`${ref} = if_not_exists(${ref}, ${this.value(0)}) + ${this.value(n)}`);
    }
    const parts: string[] = [];
    if (sets.length > 0) parts.push(`SET ${sets.join(', ')}`);
    if (spec.remove?.length) parts.push(`REMOVE ${spec.remove.map((p) => this.path(p)).join(', ')}`);
    if (spec.addToSet?.length) {
      parts.push(
        `ADD ${spec.addToSet.map(([p, s]) => `${this.path(p)} ${this.value(new Set(s))}`).join(', ')}`,
      );
    }
    if (spec.deleteFromSet?.length) {
      parts.push(
        `DELETE ${spec.deleteFromSet.map(([p, s]) => `${this.path(p)} ${this.value(new Set(s))}`).join(', ')}`,
      );
    }
    return parts.join(' ');
  }

  /** Only the placeholders actually used, as the SDK requires. */
  params(): {
    ExpressionAttributeNames?: Record<string, string>;
    ExpressionAttributeValues?: Record<string, unknown>;
  } {
    return {
      ...(Object.keys(this.names).length > 0 ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}
