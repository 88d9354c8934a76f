/** selectsPath: what a resolver's selection asks for, through fragments and aliases. */
import { Kind, parse, type FieldNode, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { selectsPath } from '../src/graphql/selects-path.js';

/** The resolve info of the first top-level field of `query`. */
function infoOf(query: string): { fieldNodes: FieldNode[]; fragments: Record<string, FragmentDefinitionNode> } {
  const doc = parse(query);
  const operation = doc.definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)!;
  const fragments = Object.fromEntries(doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]));
  return { fieldNodes: [operation.selectionSet.selections[0] as FieldNode], fragments };
}

const IMAGES = ['edges', 'node', 'images'];

describe('selectsPath', () => {
  it('finds a field by name at its depth, aliases or not', () => {
    expect(selectsPath(infoOf('{ tasks { edges { node { id images { url } } } } }'), IMAGES)).toBe(true);
    expect(selectsPath(infoOf('{ tasks { e: edges { n: node { pics: images { url } } } } }'), IMAGES)).toBe(true);
    expect(selectsPath(infoOf('{ tasks { edges { node { id } } pageInfo { hasNextPage } } }'), IMAGES)).toBe(false);
    expect(selectsPath(infoOf('{ tasks { images { url } edges { cursor } } }'), IMAGES)).toBe(false);
    expect(selectsPath(infoOf('{ tasks { edges { node { id } } } }'), [])).toBe(true);
  });

  it('looks through inline and named fragments, nested, and a fragment used twice', () => {
    expect(selectsPath(infoOf('{ tasks { ... on TaskConnection { edges { node { ...T } } } } } fragment T on Task { ... { images { url } } }'), IMAGES)).toBe(true);
    expect(selectsPath(infoOf('{ tasks { ...C ...C } } fragment C on TaskConnection { edges { ...E } } fragment E on TaskEdge { node { images { index } } }'), IMAGES)).toBe(true);
    expect(selectsPath(infoOf('{ tasks { ...C } } fragment C on TaskConnection { edges { node { id } } }'), IMAGES)).toBe(false);
    expect(selectsPath(infoOf('{ tasks { ...Missing } }'), IMAGES)).toBe(false);
  });

  it('counts every node of a field merged from several places', () => {
    const first = infoOf('{ tasks { edges { cursor } } }');
    const second = infoOf('{ tasks { edges { node { images { url } } } } }');
    expect(selectsPath({ fieldNodes: [...first.fieldNodes, ...second.fieldNodes], fragments: {} }, IMAGES)).toBe(true);
  });
});
