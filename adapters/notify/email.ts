/**
 * E-mail with nodemailer: SMTP when `SMTP_HOST` is set; on the embedded host without SMTP, a local mail catcher
 * (nodemailer's stream transport) that writes each message as an .eml file under `<MESH_DATA_DIR>/mail/`.
 */
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

import nodemailer from 'nodemailer';

import type { NotificationMessage, Notifier, Person } from '../../domain/ports';
import type { NotifyConfig } from '../config';
import { renderEmail } from './render';

/** What the notifier needs of a nodemailer transport. */
export interface MailTransport {
    sendMail(mail: { from: string; to: string; subject: string; text: string; html: string }): Promise<unknown>;
}

export class EmailNotifier implements Notifier {
    readonly channel = 'email' as const;
    readonly configured: boolean;

    constructor(
        private readonly from: string,
        private readonly transport: MailTransport | undefined,
    ) {
        this.configured = transport !== undefined;
    }

    addressOf(person: Person): string | undefined {
        return person.email;
    }

    async send(message: NotificationMessage, to: string): Promise<void> {
        if (!this.transport) throw new Error('e-mail is not configured (SMTP_HOST)');
        const { subject, text, html } = renderEmail(message);
        await this.transport.sendMail({ from: this.from, to, subject, text, html });
    }
}

/** The configured transport: SMTP, else the local mail catcher on the embedded host, else none. */
export function emailNotifier(cfg: Pick<NotifyConfig, 'smtp' | 'mailFrom' | 'outboxDir'>): EmailNotifier {
    if (cfg.smtp) {
        const { host, port, user, password } = cfg.smtp;
        const smtp = nodemailer.createTransport({
            host,
            port,
            secure: port === 465,
            ...(user ? { auth: { user, pass: password ?? '' } } : {}),
        });
        return new EmailNotifier(cfg.mailFrom, smtp);
    }
    if (cfg.outboxDir) return new EmailNotifier(cfg.mailFrom, new MailCatcher(join(cfg.outboxDir, 'mail')));
    return new EmailNotifier(cfg.mailFrom, undefined);
}

/** The local mail catcher: renders the full MIME message with nodemailer and keeps it as `<mailDir>/<time>-<id>.eml`. */
export class MailCatcher implements MailTransport {
    private readonly stream = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });

    constructor(readonly mailDir: string) {}

    async sendMail(mail: Parameters<MailTransport['sendMail']>[0]): Promise<string> {
        const info = await this.stream.sendMail(mail);
        await fsp.mkdir(this.mailDir, { recursive: true });
        const file = join(this.mailDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID()}.eml`);
        await fsp.writeFile(file, info.message);
        return file;
    }
}
