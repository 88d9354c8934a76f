/** The schema: every type file registers itself on the builder; this builds it. */
import { builder } from '../builder.js';
import './errors.js';
import './image.js';
import './task.js';
import './task-progress.js';
import './generate.js';

/** The executable schema; schema.graphql is its printed, sorted form. */
export const schema = builder.toSchema();
