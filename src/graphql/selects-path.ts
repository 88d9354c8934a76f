/**
 * Whether a resolver's selection asks for a field some levels down (`edges { node { images } }`),
 * through inline fragments and named fragments, whatever the aliases. A resolver uses it to read
 * in one go what its children would otherwise each ask for. `@skip`/`@include` are not evaluated:
 * a skipped field counts as asked for (the read is wasted, never missing).
 */
import { Kind, type FragmentDefinitionNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/** Whether the field being resolved selects `path` (field names, from its own children down). */
export function selectsPath(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>, path: readonly string[]): boolean {
  return info.fieldNodes.some((node) => node.selectionSet !== undefined && inSelection(node.selectionSet, path, info.fragments, new Set()));
}

function inSelection(set: SelectionSetNode, path: readonly string[], fragments: Record<string, FragmentDefinitionNode>, seen: Set<string>): boolean {
  const [head, ...rest] = path;
  if (head === undefined) return true;
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value !== head) continue;
      if (rest.length === 0) return true;
      if (selection.selectionSet && inSelection(selection.selectionSet, rest, fragments, seen)) return true;
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      if (inSelection(selection.selectionSet, path, fragments, seen)) return true;
    } else {
      const name = selection.name.value;
      // Validation forbids fragment cycles; the set only keeps one from being walked twice.
      const fragment = fragments[name];
      if (!fragment || seen.has(name)) continue;
      seen.add(name);
      if (inSelection(fragment.selectionSet, path, fragments, seen)) return true;
    }
  }
  return false;
}
