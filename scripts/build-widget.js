#!/usr/bin/env node
/**
 * Bundles the dashboard widget (widget/src/mesh-dashboard.ts, Lit included) with esbuild into one self-contained ES
 * module, dist/widget/mesh-dashboard.js, which functions/http/widgetModule.ts serves at /widget/mesh-dashboard.js:
 * a host page loads it with one request and no other code. Run by `npm run build`.
 */
'use strict';

const path = require('node:path');
const esbuild = require('esbuild');

const ROOT = path.join(__dirname, '..');

esbuild
    .build({
        entryPoints: [path.join(ROOT, 'widget', 'src', 'mesh-dashboard.ts')],
        outfile: path.join(ROOT, 'dist', 'widget', 'mesh-dashboard.js'),
        tsconfig: path.join(ROOT, 'widget', 'tsconfig.json'),
        bundle: true,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        minify: true,
        sourcemap: false,
        legalComments: 'eof',
        logLevel: 'warning',
    })
    .catch(() => process.exit(1));
