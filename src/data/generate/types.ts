/** One rendered CAPTCHA: its label and its encoded image file. */
export interface Captcha {
  label: string;
  image: Buffer;
  /** File extension without the dot: 'png' or 'jpg'. */
  ext: 'png' | 'jpg';
}
